//! What every admin action shares: the acting admin (for the audit log) and the queue and
//! job named by the path.

use actix_web::{HttpMessage, HttpRequest};
use orderly_db::audit_log::Actor;
use orderly_db::users::Role;
use orderly_jobs::Queue;
use uuid::Uuid;

use crate::extract::AuthUser;
use crate::middleware::RequestId;
use crate::problem::ApiError;

/// The caller's request id, for the audit log.
pub fn request_id(req: &HttpRequest) -> Option<String> {
    req.extensions().get::<RequestId>().map(|r| r.0.clone())
}

/// The admin acting (`403` for anyone else).
pub fn actor<'a>(caller: &AuthUser, request_id: Option<&'a str>) -> Result<Actor<'a>, ApiError> {
    caller.require(&[Role::Admin])?;
    Ok(Actor {
        user_id: caller.id,
        request_id,
    })
}

/// A queue named in a path: `422` when there is no such queue.
pub fn queue(name: &str) -> Result<Queue, ApiError> {
    Queue::parse(name).ok_or_else(|| {
        let known: Vec<&str> = Queue::ALL.iter().map(|q| q.as_str()).collect();
        ApiError::invalid(
            "queue",
            format!(
                "unknown queue `{name}`; expected one of {}",
                known.join(", ")
            ),
        )
    })
}

/// A job id named in a path: `404` when it cannot be one.
pub fn job_id(text: &str, queue: Queue) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text)
        .map_err(|_| ApiError::NotFound(format!("no such job in the {} queue", queue.as_str())))
}
