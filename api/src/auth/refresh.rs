//! Refresh tokens: issue, rotate (with reuse detection) and revoke.
//!
//! Each login starts a family. Rotating marks the presented token used and issues its
//! successor; presenting a used token again means it leaked, so the whole family is revoked.

use chrono::{DateTime, Utc};
use orderly_db::{refresh_tokens, users};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set, TransactionTrait,
};
use uuid::Uuid;

use super::tokens::{REFRESH_TTL, hash_refresh_token, new_refresh_token};

/// Why a refresh token was refused.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Never issued (or garbage).
    #[error("the refresh token is not valid")]
    Unknown,
    /// Past its expiry.
    #[error("the refresh token has expired")]
    Expired,
    /// Revoked by logout or by reuse detection.
    #[error("the refresh token has been revoked")]
    Revoked,
    /// Already rotated once: its family is now revoked.
    #[error("the refresh token was already used; all tokens of this session are revoked")]
    Reused,
    /// Database trouble.
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// Stores a new refresh token for `user_id` in `family_id` and returns the token.
pub async fn issue(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    family_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(Uuid, String), sea_orm::DbErr> {
    let token = new_refresh_token();
    let id = Uuid::now_v7();
    refresh_tokens::ActiveModel {
        id: Set(id),
        user_id: Set(user_id),
        family_id: Set(family_id),
        token_hash: Set(hash_refresh_token(&token)),
        expires_at: Set((now + REFRESH_TTL).into()),
        used_at: Set(None),
        revoked_at: Set(None),
        replaced_by: Set(None),
        created_at: Set(now.into()),
    }
    .insert(db)
    .await?;
    Ok((id, token))
}

/// Exchanges a refresh token for its successor; returns the user and the new token.
///
/// The token is claimed by one conditional `UPDATE … WHERE used_at IS NULL`: of two
/// concurrent refreshes of one token exactly one claims it; the other finds it used, which
/// is reuse, and revokes the whole login (the winner's successor included).
pub async fn rotate(
    db: &DatabaseConnection,
    token: &str,
    now: DateTime<Utc>,
) -> Result<(users::Model, String), RefreshError> {
    let hash = hash_refresh_token(token);
    let txn = db.begin().await?;
    let claimed = refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::UsedAt, Expr::value(now))
        .filter(refresh_tokens::Column::TokenHash.eq(hash.clone()))
        .filter(refresh_tokens::Column::UsedAt.is_null())
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .filter(refresh_tokens::Column::ExpiresAt.gte(now))
        .exec_with_returning(&txn)
        .await?;
    let Some(row) = claimed.into_iter().next() else {
        drop(txn);
        return Err(refused(db, &hash, now).await?);
    };
    let user = users::Entity::find_by_id(row.user_id)
        .one(&txn)
        .await?
        .ok_or(RefreshError::Unknown)?;
    let (next_id, next) = issue(&txn, row.user_id, row.family_id, now).await?;
    refresh_tokens::ActiveModel {
        id: Set(row.id),
        replaced_by: Set(Some(next_id)),
        ..Default::default()
    }
    .update(&txn)
    .await?;
    txn.commit().await?;
    Ok((user, next))
}

/// Why a token that could not be claimed is refused; a used one revokes its family.
async fn refused(
    db: &DatabaseConnection,
    hash: &str,
    now: DateTime<Utc>,
) -> Result<RefreshError, sea_orm::DbErr> {
    let Some(row) = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::TokenHash.eq(hash))
        .one(db)
        .await?
    else {
        return Ok(RefreshError::Unknown);
    };
    if row.revoked_at.is_some() {
        return Ok(RefreshError::Revoked);
    }
    if row.used_at.is_some() {
        revoke_family(db, row.family_id, now).await?;
        tracing::warn!(user.id = %row.user_id, token.family_id = %row.family_id, "refresh token reused; family revoked");
        return Ok(RefreshError::Reused);
    }
    Ok(RefreshError::Expired)
}

/// Revokes the family of `token` (logout). Unknown tokens are ignored.
pub async fn revoke(
    db: &DatabaseConnection,
    token: &str,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    let row = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::TokenHash.eq(hash_refresh_token(token)))
        .one(db)
        .await?;
    if let Some(row) = row {
        revoke_family(db, row.family_id, now).await?;
    }
    Ok(())
}

async fn revoke_family(
    db: &impl ConnectionTrait,
    family_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    refresh_tokens::Entity::update_many()
        .col_expr(refresh_tokens::Column::RevokedAt, Expr::value(now))
        .filter(refresh_tokens::Column::FamilyId.eq(family_id))
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}
