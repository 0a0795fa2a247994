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
    /// When the relay claimed it (Unix milliseconds, database clock): each push is a task
    /// of its own, so a re-push after a lost or stuck one is never ignored by the queue.
    pub claim: i64,
}

impl Envelope {
    /// The queue's task id: one per outbox row, attempt and claim.
    pub fn task_id(&self) -> String {
        task_id(self.outbox_id, self.attempt, self.claim)
    }
}

/// The queue's task id of attempt `attempt` (1-based) of outbox row `outbox_id`, claimed
/// at `claim` (Unix milliseconds).
pub fn task_id(outbox_id: Uuid, attempt: u32, claim: i64) -> String {
    format!("{}.{}.{}", outbox_id.simple(), attempt, claim)
}
