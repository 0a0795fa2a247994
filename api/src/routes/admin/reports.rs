//! `POST` and `GET /api/v1/admin/reports/daily?date=YYYY-MM-DD`: ask for a day's report
//! again, and read the stored one.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, get, post, web};
use chrono::{Datelike, NaiveDate, Utc};
use orderly_db::users::Role;
use orderly_domain::reports::{self, Report};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::extract::AuthUser;
use crate::extract::query::parse;
use crate::middleware::RequestId;
use crate::openapi::problems::{ForbiddenProblem, NotFoundProblem, ValidationProblem};
use crate::problem::{ApiError, ApiResult};
use crate::state::AppState;

/// Which day.
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DayQuery {
    /// The day, `YYYY-MM-DD`, in the report time zone (`REPORT_TZ`).
    #[param(value_type = String, format = Date, example = "2026-11-20")]
    #[serde(deserialize_with = "day")]
    pub date: NaiveDate,
}

/// `YYYY-MM-DD` and nothing else (chrono alone would also take `+12345-01-01`).
fn day<'de, D: Deserializer<'de>>(deserializer: D) -> Result<NaiveDate, D::Error> {
    let text = String::deserialize(deserializer)?;
    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .ok()
        .filter(|d| text.len() == 10 && (1..=9999).contains(&d.year()))
        .ok_or_else(|| serde::de::Error::custom("must be a day as YYYY-MM-DD"))
}

/// The run that was asked for.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportRequested {
    /// The day.
    #[schema(value_type = String, format = Date, example = "2026-11-20")]
    pub date: NaiveDate,
    /// The run's id: the report job's `request`, and the `details` of the `audit_log` row.
    pub request: uuid::Uuid,
}

/// Computes the day's report again and replaces the stored one, in the background; the
/// admins are e-mailed this run's report. A day that has not begun yet is refused.
#[utoipa::path(post, path = "/api/v1/admin/reports/daily", operation_id = "requestDailyReport", tag = "admin", params(DayQuery),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "the report job is enqueued", body = ReportRequested),
        (status = 403, description = "not an admin", body = ForbiddenProblem, content_type = "application/problem+json"),
        (status = 422, description = "`date` is missing, not a day, or in the future", body = ValidationProblem, content_type = "application/problem+json"),
    ))]
#[post("/admin/reports/daily")]
pub async fn request_daily(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AuthUser,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin])?;
    let date = parse::<DayQuery>(req.query_string())?.date;
    let today = Utc::now()
        .with_timezone(&state.settings.report_tz)
        .date_naive();
    if date > today {
        return Err(ApiError::invalid(
            "date",
            format!(
                "{date} has not begun yet in {}",
                state.settings.report_tz.name()
            ),
        ));
    }
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    let request = reports::request(&state.db, date, caller.id, request_id.as_deref()).await?;
    Ok(HttpResponse::Accepted().json(ReportRequested { date, request }))
}

/// The stored report of the day.
#[utoipa::path(get, path = "/api/v1/admin/reports/daily", operation_id = "getDailyReport", tag = "admin", params(DayQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the stored report of the day", body = Report),
        (status = 403, description = "not an admin", body = ForbiddenProblem, content_type = "application/problem+json"),
        (status = 404, description = "no report is stored for the day", body = NotFoundProblem, content_type = "application/problem+json"),
        (status = 422, description = "`date` is missing or not a day", body = ValidationProblem, content_type = "application/problem+json"),
    ))]
#[get("/admin/reports/daily")]
pub async fn daily(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: AuthUser,
) -> ApiResult<HttpResponse> {
    caller.require(&[Role::Admin])?;
    // After the role check: only an admin learns what a good query looks like.
    let date = parse::<DayQuery>(req.query_string())?.date;
    let report = reports::find(&state.db, date)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no report is stored for {date}")))?;
    Ok(HttpResponse::Ok().json(report))
}
