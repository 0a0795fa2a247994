//! `Idempotency-Key` for `POST`s that create: the same key from the same user with the same
//! body answers the first response again (`Idempotent-Replayed: true`); the same key with
//! another body is `422 idempotency_key_reused`. Keys live 24 hours.
//!
//! A request claims its key (one statement), runs, and ends its claim: a success stores its
//! answer for replays; an error (a `503` included) deletes the claim, so that the client may
//! retry with the same key at once (a booking committed before its request failed is found
//! by its key on that retry: `routes/bookings/create.rs`). Ending a claim does not rest on
//! the connection that just failed: it is retried on other connections of the pool for up
//! to [`END_INLINE`] before the answer goes out, then in the background until it lands or
//! the claim could be taken over anyway ([`IN_FLIGHT_GIVE_UP`]); a success is answered even
//! while its store is still being retried. A claim dropped unended (the client went away)
//! is deleted the same way. A claim is told apart from a later one of the same key by its
//! `created_at`, so a late end never touches the claim of a retry.
//!
//! A request that finds its key claimed but unanswered waits up to [`WAIT_FOR_FIRST`] for
//! the first request to end, then replays its answer or claims the key. Only a first
//! request still running after that wait is `409 conflict`; one whose process died is taken
//! over after [`IN_FLIGHT_GIVE_UP`].

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use chrono::{DateTime, SubsecRound, Utc};
use orderly_db::sql;
use orderly_db::sql::stmt;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use serde::Serialize;
use tokio::time::Instant;
use uuid::Uuid;

use crate::problem::{ApiError, ApiResult, ErrorCode};

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// SHA-256 of a body's canonical JSON (RFC 8785: keys sorted at every depth, no blanks, one
/// spelling per number and string): two bodies that mean the same thing have the same
/// fingerprint. Put in the request's extensions by `StrictJson` when the request carries
/// a key ([`HEADER`]), and compared here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyFingerprint(pub String);
/// How long a key is remembered.
pub const KEY_TTL: chrono::Duration = chrono::Duration::hours(24);
/// A first request still unanswered after this long is taken to have died with its
/// process: a live one ends its claim, in the background if need be, well before.
pub const IN_FLIGHT_GIVE_UP: chrono::Duration = chrono::Duration::seconds(60);
/// How long a request waits for an unanswered first request with its key to end.
pub const WAIT_FOR_FIRST: Duration = Duration::from_secs(2);
/// How long a request tries to end its claim before it answers; the background goes on.
pub const END_INLINE: Duration = Duration::from_secs(1);

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

/// A key claimed by this request; end it with [`Claim::store`] or [`Claim::release`].
/// Dropped unended, it is released in the background.
#[derive(Debug)]
pub struct Claim {
    db: DatabaseConnection,
    id: ClaimId,
    state: ClaimState,
}

/// Which claim: its key, and when it was made (to the microsecond PostgreSQL keeps).
#[derive(Debug, Clone)]
struct ClaimId {
    user_id: Uuid,
    key: String,
    claimed_at: DateTime<Utc>,
}

#[derive(Debug)]
enum ClaimState {
    Open,
    Ending(End),
    Ended,
}

/// How a claim ends.
#[derive(Debug, Clone)]
enum End {
    /// The request succeeded: keep its answer for replays.
    Store { status: i16, body: Vec<u8> },
    /// It failed or was abandoned: forget the key so that it may be retried.
    Release,
}

impl End {
    fn name(&self) -> &'static str {
        match self {
            Self::Store { .. } => "store",
            Self::Release => "release",
        }
    }
}

/// What to do with a request that carries a key.
#[derive(Debug)]
pub enum Outcome {
    /// First time: run the request, then store or release the claim.
    Run(Claim),
    /// Seen before: answer this.
    Replay(HttpResponse),
}

/// What a key's row says when this request could not claim it.
enum Seen {
    Answered(HttpResponse),
    InFlight,
    /// The row went between the two statements (its claim was released).
    Gone,
}

/// The request as the key's row records it.
struct Fingerprint {
    method: String,
    path: String,
    hash: String,
}

sql! {
    /// Inserts a key's row, or takes over one that expired (`$6` is now) or whose first
    /// request died (claimed before `$8`).
    CLAIM = "INSERT INTO idempotency_keys (user_id, key, method, path, request_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (user_id, key) DO UPDATE
                SET method = EXCLUDED.method, path = EXCLUDED.path, request_hash = EXCLUDED.request_hash,
                    response_status = NULL, response_body = NULL,
                    created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
              WHERE idempotency_keys.expires_at < $6
                 OR (idempotency_keys.response_status IS NULL AND idempotency_keys.created_at < $8)";
    /// The row of a key.
    SEEN = "SELECT method, path, request_hash, response_status, response_body
              FROM idempotency_keys WHERE user_id = $1 AND key = $2";
    /// Stores the answer (`$4`, `$5`) of the claim `$1`, `$2`, `$3`, unless it was taken over.
    STORE = "UPDATE idempotency_keys SET response_status = $4, response_body = $5
              WHERE user_id = $1 AND key = $2 AND created_at = $3 AND response_status IS NULL";
    /// Deletes the claim `$1`, `$2`, `$3`, unless it was taken over or answered.
    RELEASE = "DELETE FROM idempotency_keys
                WHERE user_id = $1 AND key = $2 AND created_at = $3 AND response_status IS NULL";
}

/// Claims `key` for this request, or decides how to answer it from the first one, waiting
/// up to [`WAIT_FOR_FIRST`] for a first one that is still unanswered.
pub async fn begin(
    db: &DatabaseConnection,
    req: &HttpRequest,
    user_id: Uuid,
    key: String,
) -> ApiResult<Outcome> {
    let request = Fingerprint {
        method: req.method().as_str().to_owned(),
        path: req.path().to_owned(),
        hash: req
            .extensions()
            .get::<BodyFingerprint>()
            .map(|f| f.0.clone())
            .unwrap_or_default(),
    };
    let wait_until = Instant::now() + WAIT_FOR_FIRST;
    let mut pause = Duration::from_millis(20);
    loop {
        if let Some(id) = claim(db, &request, user_id, &key).await? {
            return Ok(Outcome::Run(Claim {
                db: db.clone(),
                id,
                state: ClaimState::Open,
            }));
        }
        let seen = seen(db, &request, user_id, &key).await?;
        let waited = Instant::now() >= wait_until;
        match seen {
            Seen::Answered(response) => return Ok(Outcome::Replay(response)),
            Seen::InFlight | Seen::Gone if waited => {
                return Err(ApiError::conflict(
                    ErrorCode::Conflict,
                    "a request with this Idempotency-Key is still being processed",
                ));
            }
            Seen::Gone => {}
            Seen::InFlight => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
        }
    }
}

/// Inserts the key's row, or takes over one that expired or whose first request died.
async fn claim(
    db: &DatabaseConnection,
    request: &Fingerprint,
    user_id: Uuid,
    key: &str,
) -> Result<Option<ClaimId>, DbErr> {
    let now = Utc::now().trunc_subsecs(6);
    let claimed = db
        .execute_raw(stmt(
            &CLAIM,
            vec![
                user_id.into(),
                key.into(),
                request.method.clone().into(),
                request.path.clone().into(),
                request.hash.clone().into(),
                now.into(),
                (now + KEY_TTL).into(),
                (now - IN_FLIGHT_GIVE_UP).into(),
            ],
        ))
        .await?
        .rows_affected()
        == 1;
    Ok(claimed.then(|| ClaimId {
        user_id,
        key: key.to_owned(),
        claimed_at: now,
    }))
}

/// Reads the row of a key that another request holds or answered.
async fn seen(
    db: &DatabaseConnection,
    request: &Fingerprint,
    user_id: Uuid,
    key: &str,
) -> ApiResult<Seen> {
    let Some(row) = db
        .query_one_raw(stmt(&SEEN, [user_id.into(), key.into()]))
        .await?
    else {
        return Ok(Seen::Gone);
    };
    let same_request = row.try_get::<String>("", "method")? == request.method
        && row.try_get::<String>("", "path")? == request.path
        && row.try_get::<String>("", "request_hash")? == request.hash;
    if !same_request {
        return Err(ApiError::idempotency_key_reused());
    }
    let status: Option<i16> = row.try_get("", "response_status")?;
    let body: Option<Vec<u8>> = row.try_get("", "response_body")?;
    let Some(status) = status else {
        return Ok(Seen::InFlight);
    };
    let status = StatusCode::from_u16(status as u16).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Seen::Answered(
        HttpResponse::build(status)
            .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
            .insert_header(("Idempotent-Replayed", "true"))
            .body(body.unwrap_or_default()),
    ))
}

impl Claim {
    /// Keeps a successful answer (`body`, JSON) for replays.
    pub async fn store(self, status: StatusCode, body: Vec<u8>) {
        let status = status.as_u16() as i16;
        self.end(End::Store { status, body }).await;
    }

    /// Forgets the key after a failed request, so that it may be retried.
    pub async fn release(self) {
        self.end(End::Release).await;
    }

    /// Ends the claim, trying other connections for up to [`END_INLINE`], then handing it
    /// to the background.
    async fn end(mut self, end: End) {
        let deadline = Instant::now() + END_INLINE;
        let mut pause = Duration::from_millis(10);
        // Should this future be dropped mid-way, `Drop` finishes the same end.
        self.state = ClaimState::Ending(end.clone());
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let error =
                match tokio::time::timeout(remaining, end_once(&self.db, &self.id, &end)).await {
                    Ok(Ok(())) => {
                        self.state = ClaimState::Ended;
                        return;
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "timed out".to_owned(),
                };
            if Instant::now() + pause >= deadline {
                tracing::warn!(error = %error, idempotency.end = end.name(), "could not end an idempotency claim; retrying in the background");
                // `Drop` hands the end to the background.
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let end = match std::mem::replace(&mut self.state, ClaimState::Ended) {
            ClaimState::Ended => return,
            // The request was dropped before it ended (its client went away).
            ClaimState::Open => End::Release,
            ClaimState::Ending(end) => end,
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("an idempotency claim was left open outside a runtime");
            return;
        };
        runtime.spawn(end_in_background(self.db.clone(), self.id.clone(), end));
    }
}

/// Retries `end` until it lands or the claim could be taken over anyway.
async fn end_in_background(db: DatabaseConnection, id: ClaimId, end: End) {
    let give_up = id.claimed_at + IN_FLIGHT_GIVE_UP;
    let mut pause = Duration::from_millis(20);
    loop {
        match end_once(&db, &id, &end).await {
            Ok(()) => {
                tracing::info!(
                    idempotency.end = end.name(),
                    "idempotency claim ended in the background"
                );
                return;
            }
            Err(e) if Utc::now() >= give_up => {
                tracing::error!(error = %e, idempotency.end = end.name(), "gave up ending an idempotency claim; its key is taken over by the next request");
                return;
            }
            Err(_) => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// One attempt at `end`. A claim that was taken over meanwhile is left alone.
async fn end_once(db: &DatabaseConnection, id: &ClaimId, end: &End) -> Result<(), DbErr> {
    let mut values = vec![
        id.user_id.into(),
        id.key.clone().into(),
        id.claimed_at.into(),
    ];
    let sql = match end {
        End::Store { status, body } => {
            values.extend([(*status).into(), body.clone().into()]);
            &STORE
        }
        End::Release => &RELEASE,
    };
    db.execute_raw(stmt(sql, values)).await.map(drop)
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
    let claim = match begin(db, req, user_id, key.clone()).await? {
        Outcome::Replay(response) => return Ok(response),
        Outcome::Run(claim) => claim,
    };
    let answer = create(Some(key))
        .await
        .and_then(|body| serde_json::to_vec(&body).map_err(|e| ApiError::Internal(e.into())));
    match answer {
        Ok(body) => {
            // What was created is the client's answer even while its store is retried in
            // the background: a retry meanwhile waits for it.
            claim.store(status, body.clone()).await;
            Ok(HttpResponse::build(status)
                .insert_header((CONTENT_TYPE, HeaderValue::from_static("application/json")))
                .body(body))
        }
        Err(e) => {
            claim.release().await;
            Err(e)
        }
    }
}
