//! `GET /api/v1/admin/schedules`: the scheduler's table as it runs: each entry's expression,
//! time zone, next and last run, and the replica that leads.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use orderly_db::schedule_runs::{self, ScheduleRunStatus};
use orderly_db::users::Role;
use orderly_jobs::schedules::{self, Entry, Table};
use serde::Serialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::extract::AuthUser;
use crate::openapi::problems::ForbiddenProblem;
use crate::problem::ApiResult;
use crate::state::AppState;

/// The table, and who runs it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulesView {
    /// The scheduler replica that leads; `null` when none runs.
    #[schema(required = true)]
    pub leader: Option<LeaderView>,
    /// Every entry of the table.
    pub schedules: Vec<ScheduleView>,
}

/// The leading replica.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaderView {
    /// The replica, as `host:pid:nonce`.
    pub holder: String,
    /// Its fencing token (grows with each change of leader).
    pub token: i64,
    /// When its lease runs out unless it renews it.
    pub lease_until: DateTime<Utc>,
}

/// One entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    /// Which entry.
    #[schema(value_type = ScheduleName)]
    pub name: &'static str,
    /// What its job does.
    pub description: &'static str,
    /// Cron expression, seconds first.
    pub expression: String,
    /// The IANA time zone the expression is read in.
    pub timezone: String,
    /// Its next tick; `null` if the expression has none left.
    #[schema(required = true)]
    pub next_run: Option<DateTime<Utc>>,
    /// Its latest tick that fired; `null` if none did.
    #[schema(required = true)]
    pub last_run: Option<RunView>,
}

/// The name of a schedule entry: one of the scheduler's table (`Entry::ALL`).
#[derive(Debug)]
pub struct ScheduleName;

impl PartialSchema for ScheduleName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("The name of an entry of the scheduler's table."))
            .enum_values(Some(Entry::ALL.iter().map(|entry| entry.name())))
            .into()
    }
}

impl ToSchema for ScheduleName {}

/// A tick that fired.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    /// The tick it belongs to.
    pub scheduled_for: DateTime<Utc>,
    /// When the leader fired it.
    pub started_at: DateTime<Utc>,
    /// When its job ended; `null` while it runs.
    #[schema(required = true)]
    pub finished_at: Option<DateTime<Utc>>,
    /// `running` until its job ends, then `done`, or `failed` (the job died).
    pub status: ScheduleRunStatus,
    /// The job's last error when it failed.
    #[schema(required = true)]
    pub error: Option<String>,
    /// The replica that fired it.
    pub leader: String,
    /// The dedup key of the job it enqueued (`daily_report:2026-11-20`).
    #[schema(required = true)]
    pub job: Option<String>,
}

impl From<schedule_runs::Model> for RunView {
    fn from(run: schedule_runs::Model) -> Self {
        Self {
            scheduled_for: run.scheduled_for.to_utc(),
            started_at: run.started_at.to_utc(),
            finished_at: run.finished_at.map(|t| t.to_utc()),
            status: run.status,
            error: run.error,
            leader: run.leader,
            job: run.task_id,
        }
    }
}

/// The scheduler's entries with their last and next runs, and the leader.
#[utoipa::path(get, path = "/api/v1/admin/schedules", operation_id = "listAdminSchedules", tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "every entry of the table, and the leader", body = SchedulesView),
        (status = 403, description = "not an admin", body = ForbiddenProblem, content_type = "application/problem+json"),
    ))]
#[get("/admin/schedules")]
pub async fn list(state: web::Data<AppState>, caller: AuthUser) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin])?;
    let mut last = schedules::last_runs(&state.db).await?;
    let leader = schedules::leader(&state.db).await?;
    let now = Utc::now();
    let table = Table::from_settings(&state.settings);
    let schedules = table
        .entries()
        .into_iter()
        .map(|s| ScheduleView {
            name: s.entry.name(),
            description: s.entry.about(),
            expression: s.expression.source().to_owned(),
            timezone: s.tz.name().to_owned(),
            next_run: s.next_after(now),
            last_run: last.remove(&s.entry).map(RunView::from),
        })
        .collect();
    Ok(HttpResponse::Ok().json(SchedulesView {
        leader: leader.map(|l| LeaderView {
            holder: l.holder,
            token: l.token,
            lease_until: l.lease_until,
        }),
        schedules,
    }))
}
