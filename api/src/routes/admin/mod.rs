//! `/api/v1/admin`: operations, for admins only (anyone else: `403`).

pub mod jobs;
pub mod operator;
pub mod queues;
pub mod reports;
pub mod schedules;
