//! `/health`, `/ready` and `/metrics`.

use std::time::Duration;

use actix_web::{HttpResponse, get, web};
use metrics_exporter_prometheus::PrometheusRecorder;
use sea_orm::ConnectionTrait;
use serde::Serialize;
use utoipa::ToSchema;

use crate::openapi::PROBLEM_JSON;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `{"status": "ok"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` while the process runs.
    pub status: &'static str,
}

/// Liveness: answers while the process runs.
#[utoipa::path(get, path = "/health", operation_id = "getHealth", tag = "service", responses((status = 200, description = "the process runs", body = Health)))]
#[get("/health")]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// Readiness of each dependency.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// Whether the API can serve: PostgreSQL answers.
    pub status: ReadinessStatus,
    /// `ok`, or what failed, per dependency.
    pub checks: Checks,
}

/// Whether the API is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadinessStatus {
    /// PostgreSQL answers (Redis may not; see `checks`).
    Ok,
    /// PostgreSQL does not answer.
    Unavailable,
}

/// One entry per dependency.
#[derive(Debug, Serialize, ToSchema)]
pub struct Checks {
    /// PostgreSQL.
    pub postgres: String,
    /// Redis.
    pub redis: String,
}

/// A `503 unavailable` problem that also says what each dependency answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotReady {
    /// The problem (`unavailable`).
    #[serde(flatten)]
    pub problem: Problem,
    /// `ok`, or what failed, per dependency.
    pub checks: Checks,
}

/// Readiness: `200` when PostgreSQL answers, else `503`. Redis's state is reported in `checks`
/// but does not decide: every replica shares one Redis, so taking them all out of the load
/// balancer when it is down would turn the few requests that need it into a full outage.
#[utoipa::path(get, path = "/ready", operation_id = "getReadiness", tag = "service", responses(
    (status = 200, description = "PostgreSQL answers (Redis's state is in `checks`)", body = Readiness),
    (status = 503, description = "PostgreSQL is down", body = NotReady, content_type = "application/problem+json",
        headers(("Retry-After" = String, description = "seconds to wait before asking again"))),
))]
#[get("/ready")]
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let postgres = async {
        match tokio::time::timeout(CHECK_TIMEOUT, state.db.execute_unprepared("SELECT 1")).await {
            Ok(Ok(_)) => "ok".to_owned(),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: PostgreSQL failed");
                "unavailable".to_owned()
            }
            Err(_) => "timed out".to_owned(),
        }
    };
    let redis = async {
        let mut conn = state.redis.clone();
        let ping = redis::cmd("PING");
        match tokio::time::timeout(CHECK_TIMEOUT, ping.query_async::<String>(&mut conn)).await {
            Ok(Ok(_)) => "ok".to_owned(),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: Redis failed");
                "unavailable".to_owned()
            }
            Err(_) => "timed out".to_owned(),
        }
    };
    let (postgres, redis) = tokio::join!(postgres, redis);
    let ok = postgres == "ok";
    if !ok {
        tracing::warn!(postgres = %postgres, redis = %redis, "not ready");
    } else if redis != "ok" {
        tracing::warn!(redis = %redis, "ready, but Redis does not answer");
    }
    let body = Readiness {
        status: if ok {
            ReadinessStatus::Ok
        } else {
            ReadinessStatus::Unavailable
        },
        checks: Checks { postgres, redis },
    };
    if ok {
        return HttpResponse::Ok().json(body);
    }
    let detail = match body.checks.redis.as_str() {
        "ok" => "PostgreSQL does not answer",
        _ => "PostgreSQL and Redis do not answer",
    };
    HttpResponse::ServiceUnavailable()
        .content_type(PROBLEM_JSON)
        .insert_header((
            actix_web::http::header::RETRY_AFTER,
            crate::problem::RETRY_AFTER_OUTAGE_S.to_string(),
        ))
        .json(NotReady {
            problem: ApiError::Unavailable(detail.into()).problem(),
            checks: body.checks,
        })
}

/// Prometheus metrics in the text format (this app's registry).
#[utoipa::path(get, path = "/metrics", operation_id = "getMetrics", tag = "service", responses(
    (status = 200, description = "the metrics, in Prometheus's text format", content_type = "text/plain", body = String),
    (status = 404, description = "with `METRICS_ADDR` set, the metrics are served there only", body = crate::openapi::problems::NotFoundProblem, content_type = "application/problem+json"),
))]
#[get("/metrics")]
pub async fn metrics(
    state: web::Data<AppState>,
    recorder: web::Data<PrometheusRecorder>,
) -> Result<HttpResponse, ApiError> {
    if let Some(addr) = state.settings.metrics_addr {
        // Served apart, on a port the load balancer does not reach.
        return Err(ApiError::NotFound(format!(
            "/metrics is served on METRICS_ADDR (port {})",
            addr.port()
        )));
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(recorder.handle().render()))
}
