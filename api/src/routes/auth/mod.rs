//! `/api/v1/auth/*` and `/api/v1/me`.

pub mod login;
pub mod logout;
pub mod me;
pub mod refresh;
pub mod register;
pub mod session;
pub mod views;
