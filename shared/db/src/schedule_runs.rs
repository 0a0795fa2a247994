//! `schedule_runs`: one row per firing of a cron entry. Inserting the row claims the
//! firing, so when several scheduler replicas fire, exactly one runs it.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// Outcome of a firing; stored as text in `schedule_runs.status`.
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
pub enum ScheduleRunStatus {
    #[sea_orm(string_value = "running")]
    Running,
    #[sea_orm(string_value = "done")]
    Done,
    #[sea_orm(string_value = "failed")]
    Failed,
}

impl ScheduleRunStatus {
    /// The value stored in the database and used in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "schedule_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub schedule_name: String,
    /// The tick time the firing belongs to (not when it ran).
    #[sea_orm(primary_key, auto_increment = false)]
    pub scheduled_for: DateTimeWithTimeZone,
    /// The scheduler replica that claimed the firing.
    #[sea_orm(column_type = "Text")]
    pub leader: String,
    pub started_at: DateTimeWithTimeZone,
    pub finished_at: Option<DateTimeWithTimeZone>,
    /// `running` while its job has not ended; then `done`, or `failed` with the job's error.
    pub status: ScheduleRunStatus,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// The dedup key of the job the firing enqueued; its outcome becomes the run's.
    #[sea_orm(column_type = "Text", nullable)]
    pub task_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
