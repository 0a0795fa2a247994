//! What travels through Redis: one outbox row's job, tagged with its attempt.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A job as pushed to a queue by the outbox relay.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    /// The outbox row, where the job's completion is recorded.
    pub outbox_id: Uuid,
    /// [`super::Job::NAME`] of the payload.
    pub job_type: String,
    /// The job's payload (IDs only).
    pub payload: serde_json::Value,
    /// The `X-Request-Id` of the request that caused the job.
    pub request_id: Option<String>,
    /// 1 for the first attempt.
    pub attempt: u32,
}

impl Envelope {
    /// The queue's task id: one per outbox row and attempt, so a re-push of the same
    /// attempt is the same task, and a retry is a new one.
    pub fn task_id(&self) -> String {
        task_id(self.outbox_id, self.attempt)
    }
}

/// The queue's task id of attempt `attempt` (1-based) of outbox row `outbox_id`.
pub fn task_id(outbox_id: Uuid, attempt: u32) -> String {
    format!("{}.{}", outbox_id.simple(), attempt)
}
