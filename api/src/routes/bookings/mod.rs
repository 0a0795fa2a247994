//! `/api/v1/bookings`: the orders that the frontend posts.

pub mod access;
pub mod cancel;
pub mod create;
pub mod get;
pub mod list;
pub mod views;
