//! Starting a session: a new refresh-token family and an access token.

use chrono::Utc;
use orderly_db::users;
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use super::views::{Session, UserView};
use crate::auth::{TokenKeys, refresh};
use crate::problem::ApiError;

/// Issues both tokens for a user who just registered or logged in.
pub async fn start(
    db: &impl ConnectionTrait,
    keys: &TokenKeys,
    user: users::Model,
) -> Result<Session, ApiError> {
    let now = Utc::now();
    let (_, refresh) = refresh::issue(db, user.id, Uuid::now_v7(), now).await?;
    let access = keys.issue_access(user.id, user.role, now)?;
    Ok(Session {
        user: UserView::from(user),
        access,
        refresh,
    })
}
