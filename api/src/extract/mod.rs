//! Request extractors: strict JSON bodies and queries, the authenticated caller, pagination.

pub mod auth;
pub mod json;
pub mod pagination;
pub mod query;

pub use auth::AuthUser;
pub use json::StrictJson;
pub use pagination::{Page, PageParams};
pub use query::StrictQuery;
