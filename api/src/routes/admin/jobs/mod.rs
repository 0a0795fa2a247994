//! `/api/v1/admin/jobs`: the outbox's jobs, and retry and discard of one or many.

pub mod discard;
pub mod discard_many;
pub mod list;
pub mod retry;
pub mod retry_many;
