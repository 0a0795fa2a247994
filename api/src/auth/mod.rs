//! Authentication: password hashes, access and refresh tokens, login attempt limits.

pub mod login_limit;
pub mod password;
pub mod refresh;
pub mod tokens;

pub use tokens::{AccessClaims, TokenKeys};
