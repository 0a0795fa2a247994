//! `/api/v1/admin/queues`: each queue's counts and workers, and pausing a queue.

pub mod list;
pub mod pause;
pub mod resume;
