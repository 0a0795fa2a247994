//! `/api/v1/listings`: what gets booked.

pub mod create;
pub mod get;
pub mod list;
pub mod update;
pub mod views;
