//! `outbox`: the durable record of every job, written in the same transaction as the
//! domain rows it belongs to. Redis is only the transport; the relays are woken by a
//! `NOTIFY orderly_outbox` sent after the transaction commits (`jobs::wake`).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// The apalis queue a job runs on; stored as text in `outbox.queue`.
#[derive(
    Copy,
    Clone,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "snake_case")]
pub enum Queue {
    #[sea_orm(string_value = "email")]
    Email,
    #[sea_orm(string_value = "sms")]
    Sms,
    #[sea_orm(string_value = "payments")]
    Payments,
    #[sea_orm(string_value = "bookings")]
    Bookings,
    #[sea_orm(string_value = "reports")]
    Reports,
}

impl Queue {
    /// The value stored in the database and used in JSON and queue names.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Payments => "payments",
            Self::Bookings => "bookings",
            Self::Reports => "reports",
        }
    }

    /// Every queue, in the order the worker starts them.
    pub const ALL: [Queue; 5] = [
        Queue::Bookings,
        Queue::Payments,
        Queue::Email,
        Queue::Sms,
        Queue::Reports,
    ];

    /// Parses a queue name as written in `--queues`.
    pub fn parse(name: &str) -> Option<Queue> {
        Self::ALL.into_iter().find(|q| q.as_str() == name)
    }
}

/// Where a job's record is; stored as text in `outbox.status`.
#[derive(
    Copy,
    Clone,
    Debug,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[sea_orm(rs_type = "String", db_type = "Text")]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    /// Committed, not yet pushed to Redis (or due at `run_at`).
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Pushed to Redis (inside its queue's window), not yet taken by a worker.
    #[sea_orm(string_value = "enqueued")]
    Enqueued,
    /// Taken by worker `locked_by`, which renews `lease_until` while it runs.
    #[sea_orm(string_value = "running")]
    Running,
    #[sea_orm(string_value = "done")]
    Done,
    /// Gave up; visible in the dashboard for retry or discard.
    #[sea_orm(string_value = "dead")]
    Dead,
}

impl OutboxStatus {
    /// The value stored in the database and used in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Enqueued => "enqueued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Dead => "dead",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub queue: Queue,
    #[sea_orm(column_type = "Text")]
    pub job_type: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub payload: Json,
    /// The job's dedup key (`Job::dedup_key`), the `ON CONFLICT` target, so the same work is
    /// enqueued once. Not the apalis task id: that is built per attempt and claim by
    /// `jobs::envelope::task_id`.
    #[sea_orm(column_type = "Text", unique)]
    pub task_id: String,
    pub run_at: DateTimeWithTimeZone,
    #[sea_orm(column_type = "Text", nullable)]
    pub request_id: Option<String>,
    pub status: OutboxStatus,
    pub attempts: i32,
    pub lease_until: Option<DateTimeWithTimeZone>,
    pub enqueued_at: Option<DateTimeWithTimeZone>,
    pub completed_at: Option<DateTimeWithTimeZone>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    /// When the current run was taken by a worker.
    pub started_at: Option<DateTimeWithTimeZone>,
    /// The worker process running it.
    #[sea_orm(column_type = "Text", nullable)]
    pub locked_by: Option<String>,
    /// Runs that ended with their worker lost (killed, out of memory) instead of an end.
    pub worker_losses: i32,
    pub created_at: DateTimeWithTimeZone,
    pub updated_at: DateTimeWithTimeZone,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
