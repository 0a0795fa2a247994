//! `Idempotency-Key` for `POST`s that create: the same key from the same user with the same
//! body answers the first response again (`Idempotent-Replayed: true`); the same key with
//! another body is `422 idempotency_key_reused`. Keys live 24 hours.
//!
//! Only successful responses are kept: after an error nothing was created, so the client
//! may retry with the same key.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use chrono::Utc;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde::Serialize;
use uuid::Uuid;

use crate::extract::json::BodyFingerprint;
use crate::problem::{ApiError, ApiResult};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// How long a key is remembered.
pub const KEY_TTL: chrono::Duration = chrono::Duration::hours(24);
/// A first request still unanswered after this long is taken to have died.
const IN_FLIGHT_GIVE_UP: chrono::Duration = chrono::Duration::seconds(60);

/// The request's key, if it sent one; `422` if it is empty or too long.
pub fn key_of(req: &HttpRequest) -> ApiResult<Option<String>> {
    let Some(value) = req.headers().get(HEADER) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| ApiError::invalid("Idempotency-Key", "must be printable text"))?;
    if key.is_empty() || key.len() > 255 {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            "must be 1 to 255 characters",
        ));
    }
    Ok(Some(key.to_owned()))
}

/// A key claimed by this request; finish it with [`Claim::store`] or [`Claim::release`].
#[derive(Debug)]
pub struct Claim {
    user_id: Uuid,
    key: String,
}

/// What to do with a request that carries a key.
#[derive(Debug)]
pub enum Outcome {
    /// First time: run the request, then store or release the claim.
    Run(Claim),
    /// Seen before: answer this.
    Replay(HttpResponse),
}

fn stmt(sql: &str, values: Vec<sea_orm::Value>) -> Statement {
    Statement::from_sql_and_values(sea_orm::DatabaseBackend::Postgres, sql, values)
}

/// Claims `key` for this request, or decides how to answer it from the first one.
pub async fn begin(
    db: &DatabaseConnection,
    req: &HttpRequest,
    user_id: Uuid,
    key: String,
) -> ApiResult<Outcome> {
    let fingerprint = req
        .extensions()
        .get::<BodyFingerprint>()
        .map(|f| f.0.clone())
        .unwrap_or_default();
    let now = Utc::now();
    let method = req.method().as_str().to_owned();
    let path = req.path().to_owned();
    // Insert, or take over a row that expired or whose first request died.
    let claimed = db
        .execute_raw(stmt(
            "INSERT INTO idempotency_keys (user_id, key, method, path, request_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (user_id, key) DO UPDATE
                SET method = EXCLUDED.method, path = EXCLUDED.path, request_hash = EXCLUDED.request_hash,
                    response_status = NULL, response_body = NULL,
                    created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
              WHERE idempotency_keys.expires_at < $6
                 OR (idempotency_keys.response_status IS NULL AND idempotency_keys.created_at < $8)",
            vec![
                user_id.into(),
                key.clone().into(),
                method.clone().into(),
                path.clone().into(),
                fingerprint.clone().into(),
                now.into(),
                (now + KEY_TTL).into(),
                (now - IN_FLIGHT_GIVE_UP).into(),
            ],
        ))
        .await?
        .rows_affected()
        == 1;
    if claimed {
        return Ok(Outcome::Run(Claim { user_id, key }));
    }
    let row = db
        .query_one_raw(stmt(
            "SELECT method, path, request_hash, response_status, response_body
               FROM idempotency_keys WHERE user_id = $1 AND key = $2",
            vec![user_id.into(), key.into()],
        ))
        .await?
        .ok_or_else(|| {
            ApiError::conflict("conflict", "the idempotency key changed hands; retry")
        })?;
    let same_request = row.try_get::<String>("", "method")? == method
        && row.try_get::<String>("", "path")? == path
        && row.try_get::<String>("", "request_hash")? == fingerprint;
    if !same_request {
        return Err(ApiError::idempotency_key_reused());
    }
    let status: Option<i16> = row.try_get("", "response_status")?;
    let body: Option<Vec<u8>> = row.try_get("", "response_body")?;
    match status {
        None => Err(ApiError::conflict(
            "conflict",
            "a request with this Idempotency-Key is still being processed",
        )),
        Some(status) => {
            let status =
                StatusCode::from_u16(status as u16).map_err(|e| ApiError::Internal(e.into()))?;
            Ok(Outcome::Replay(
                HttpResponse::build(status)
                    .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
                    .insert_header(("Idempotent-Replayed", "true"))
                    .body(body.unwrap_or_default()),
            ))
        }
    }
}

impl Claim {
    /// Keeps a successful response for replays and returns it.
    pub async fn store(
        self,
        db: &DatabaseConnection,
        status: StatusCode,
        body: &impl Serialize,
    ) -> ApiResult<HttpResponse> {
        let bytes = serde_json::to_vec(body).map_err(|e| ApiError::Internal(e.into()))?;
        db.execute_raw(stmt(
            "UPDATE idempotency_keys SET response_status = $3, response_body = $4 WHERE user_id = $1 AND key = $2",
            vec![self.user_id.into(), self.key.into(), (status.as_u16() as i16).into(), bytes.clone().into()],
        ))
        .await?;
        Ok(HttpResponse::build(status)
            .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
            .body(bytes))
    }

    /// Forgets the key after a failed request, so that it may be retried.
    pub async fn release(self, db: &DatabaseConnection) {
        let result = db
            .execute_raw(stmt(
                "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND response_status IS NULL",
                vec![self.user_id.into(), self.key.into()],
            ))
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
    }
}

/// Runs `create` under the request's `Idempotency-Key`, if any: replays a stored answer,
/// or runs it and stores a successful answer.
pub async fn run<T, F, Fut>(
    db: &DatabaseConnection,
    req: &HttpRequest,
    user_id: Uuid,
    status: StatusCode,
    create: F,
) -> ApiResult<HttpResponse>
where
    T: Serialize,
    F: FnOnce(Option<String>) -> Fut,
    Fut: std::future::Future<Output = ApiResult<T>>,
{
    let Some(key) = key_of(req)? else {
        let body = create(None).await?;
        return Ok(HttpResponse::build(status).json(body));
    };
    match begin(db, req, user_id, key.clone()).await? {
        Outcome::Replay(response) => Ok(response),
        Outcome::Run(claim) => match create(Some(key)).await {
            Ok(body) => claim.store(db, status, &body).await,
            Err(e) => {
                claim.release(db).await;
                Err(e)
            }
        },
    }
}
