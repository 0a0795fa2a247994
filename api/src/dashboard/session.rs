//! Dashboard sessions: a random 256-bit token in an `HttpOnly; SameSite=Strict;
//! Path=/admin` cookie (`Secure` in production), stored in `admin_sessions` only as its
//! SHA-256, ending after [`IDLE`] without activity or [`ABSOLUTE`] after sign-in, and on
//! logout. Every request re-reads the user, so a demoted or deleted admin loses access at
//! once. The auto-refresh's requests do not count as activity: an open, unattended tab
//! still times out.

use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures::future::LocalBoxFuture;
use orderly_core::config::AppEnv;
use orderly_db::audit_log::Actor;
use orderly_db::sql;
use orderly_db::sql::stmt;
use orderly_db::users::Role;
use sea_orm::{ConnectionTrait, DbErr};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::error::DashboardError;
use super::views::{AdminView, REFRESH_HEADER};
use crate::auth::tokens::{hash_refresh_token, new_refresh_token};
use crate::middleware::RequestId;
use crate::state::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "orderly_admin";

/// A session ends after this long without a request (other than the auto-refresh).
pub const IDLE: Duration = Duration::from_secs(8 * 3600);

/// A session ends this long after sign-in, active or not.
pub const ABSOLUTE: Duration = Duration::from_secs(24 * 3600);

sql! {
    /// A session of token hash `$1` for user `$2`, idle after `$3` seconds, over after `$4`;
    /// drops that user's expired sessions.
    START = "WITH gone AS (
            DELETE FROM admin_sessions
             WHERE user_id = $2 AND (expires_at <= now() OR idle_expires_at <= now()))
         INSERT INTO admin_sessions (token_hash, user_id, idle_expires_at, expires_at)
         VALUES ($1, $2, now() + make_interval(secs => $3), now() + make_interval(secs => $4))";
    /// Ends the session of token hash `$1`.
    END = "DELETE FROM admin_sessions WHERE token_hash = $1";
    /// The user of the live session of token hash `$1`, pushing its idle expiry to `$2`
    /// seconds from now when `$3`.
    FIND = "WITH found AS (
                SELECT s.token_hash, s.user_id, u.email, u.role
                  FROM admin_sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = $1 AND s.idle_expires_at > now() AND s.expires_at > now()),
             touched AS (
                UPDATE admin_sessions s
                   SET idle_expires_at = LEAST(now() + make_interval(secs => $2), s.expires_at)
                  FROM found f
                 WHERE $3 AND s.token_hash = f.token_hash
                   AND s.idle_expires_at
                       < LEAST(now() + make_interval(secs => $2), s.expires_at) - interval '1 minute'
                RETURNING 1)
             SELECT user_id, email, role FROM found";
}

/// Starts a session for `user_id`; returns the token for the cookie. Drops that user's
/// expired sessions on the way, so they do not pile up.
pub async fn start(db: &impl ConnectionTrait, user_id: Uuid) -> Result<String, DbErr> {
    let token = new_refresh_token();
    db.execute_raw(stmt(
        &START,
        [
            hash_refresh_token(&token).into(),
            user_id.into(),
            IDLE.as_secs_f64().into(),
            ABSOLUTE.as_secs_f64().into(),
        ],
    ))
    .await?;
    Ok(token)
}

/// Ends the session of `token` (logout).
pub async fn end(db: &impl ConnectionTrait, token: &str) -> Result<(), DbErr> {
    db.execute_raw(stmt(&END, [hash_refresh_token(token).into()]))
        .await?;
    Ok(())
}

/// The user behind a live session.
struct Found {
    user_id: Uuid,
    email: String,
    role: Role,
}

/// The live session of `token`, pushing its idle expiry forward when `touch` (at most once
/// a minute, never past its absolute expiry).
async fn find(db: &impl ConnectionTrait, token: &str, touch: bool) -> Result<Option<Found>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            &FIND,
            [
                hash_refresh_token(token).into(),
                IDLE.as_secs_f64().into(),
                touch.into(),
            ],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(Found {
        user_id: row.try_get("", "user_id")?,
        email: row.try_get("", "email")?,
        role: row.try_get("", "role")?,
    }))
}

/// The session cookie carrying `token`.
pub fn cookie(token: String, app_env: AppEnv) -> Cookie<'static> {
    Cookie::build(COOKIE, token)
        .path("/admin")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(app_env == AppEnv::Production)
        .max_age(time::Duration::seconds(ABSOLUTE.as_secs() as i64))
        .finish()
}

/// A cookie that makes the browser forget the session.
pub fn removal(app_env: AppEnv) -> Cookie<'static> {
    let mut cookie = cookie(String::new(), app_env);
    cookie.make_removal();
    cookie
}

/// The signed-in admin of a dashboard request. Without a live session the request is sent
/// to the login page; a session whose user is no longer an admin gets `403`.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The admin's user id (the actor in the audit log).
    pub user_id: Uuid,
    /// Their e-mail address, shown in the page header.
    pub email: String,
    /// This session's CSRF token, put in every form.
    pub csrf: String,
    /// The request's id, kept with the audit row.
    pub request_id: Option<String>,
}

impl Admin {
    /// The admin as the shared actions' actor.
    pub fn actor(&self) -> Actor<'_> {
        Actor {
            user_id: self.user_id,
            request_id: self.request_id.as_deref(),
        }
    }

    /// What the layout shows.
    pub fn view(&self) -> AdminView<'_> {
        AdminView {
            email: &self.email,
            csrf: &self.csrf,
        }
    }
}

/// The CSRF token of the session whose cookie carries `session_token` (checked by
/// `csrf::verified_form`): a hash of it with a fixed label, so it needs no storage, and a
/// copy of the `admin_sessions` table (hashes only) cannot forge one.
pub fn token_of(session_token: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"orderly-admin-csrf\0");
    hasher.update(session_token.as_bytes());
    hex::encode(hasher.finalize())
}

/// Where to come back to after signing in: this request's page, when it is one to show.
fn next_of(req: &HttpRequest) -> String {
    let path = req.uri().path_and_query().map_or("/admin", |p| p.as_str());
    if req.method() == actix_web::http::Method::GET && super::is_dashboard_path(path) {
        path.to_owned()
    } else {
        "/admin".to_owned()
    }
}

impl FromRequest for Admin {
    type Error = DashboardError;
    type Future = LocalBoxFuture<'static, Result<Self, DashboardError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let token = req.cookie(COOKIE).map(|c| c.value().to_owned());
        let touch = !req.headers().contains_key(REFRESH_HEADER);
        let next = next_of(req);
        let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
        Box::pin(async move {
            let state = state.ok_or_else(|| anyhow::anyhow!("AppState is not registered"))?;
            let Some(token) = token.filter(|t| !t.is_empty()) else {
                return Err(DashboardError::SignIn { next });
            };
            let Some(found) = find(&state.db, &token, touch).await? else {
                return Err(DashboardError::SignIn { next });
            };
            if found.role != Role::Admin {
                return Err(DashboardError::Forbidden(
                    "this account is not an admin; the dashboard is for admins only".into(),
                ));
            }
            Ok(Admin {
                user_id: found.user_id,
                email: found.email,
                csrf: token_of(&token),
                request_id,
            })
        })
    }
}
