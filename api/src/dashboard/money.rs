//! `GET /admin/money`: where our record of money disagreed with the payment provider and
//! what the reconciliation did about it, and the charges customers disputed with their
//! bank, each with a link to its booking's jobs.

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use orderly_db::sql;
use orderly_db::sql::stmt;
use sea_orm::ConnectionTrait;
use serde::Serialize;
use uuid::Uuid;

use super::REFRESH_MS;
use super::error::DashboardError;
use super::session::Admin;
use super::views::{NoticeQuery, now_text, page};
use crate::state::AppState;

/// Most rows of each table shown.
const SHOWN: i64 = 100;

sql! {
    /// The latest `$1` repairs of the reconciliation, with their bookings' statuses.
    REPAIRS = "SELECT r.booking_id, b.status AS booking_status, r.mismatch, r.action, r.created_at
                 FROM payment_repairs r JOIN bookings b ON b.id = r.booking_id
                ORDER BY r.created_at DESC LIMIT $1";
    /// The latest `$1` disputed charges, with their bookings' statuses.
    DISPUTES = "SELECT p.booking_id, b.status AS booking_status, p.amount_cents, p.currency,
                       COALESCE(p.dispute_reason, 'unknown') AS reason, p.disputed_at
                  FROM payments p JOIN bookings b ON b.id = p.booking_id
                 WHERE p.disputed_at IS NOT NULL
                 ORDER BY p.disputed_at DESC LIMIT $1";
}

/// One repair of the reconciliation.
#[derive(Debug, Serialize)]
struct RepairRow {
    booking_id: Uuid,
    booking_status: String,
    mismatch: String,
    action: String,
    created_at: DateTime<Utc>,
}

/// One disputed charge.
#[derive(Debug, Serialize)]
struct DisputeRow {
    booking_id: Uuid,
    booking_status: String,
    amount_cents: i64,
    currency: String,
    reason: String,
    disputed_at: DateTime<Utc>,
}

/// `GET /admin/money`.
pub async fn show(
    admin: Admin,
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<NoticeQuery>,
) -> Result<HttpResponse, DashboardError> {
    let repairs = state
        .db
        .query_all_raw(stmt(&REPAIRS, [SHOWN.into()]))
        .await?
        .iter()
        .map(|row| {
            Ok(RepairRow {
                booking_id: row.try_get("", "booking_id")?,
                booking_status: row.try_get("", "booking_status")?,
                mismatch: row.try_get("", "mismatch")?,
                action: row.try_get("", "action")?,
                created_at: row.try_get("", "created_at")?,
            })
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
    let disputes = state
        .db
        .query_all_raw(stmt(&DISPUTES, [SHOWN.into()]))
        .await?
        .iter()
        .map(|row| {
            Ok(DisputeRow {
                booking_id: row.try_get("", "booking_id")?,
                booking_status: row.try_get("", "booking_status")?,
                amount_cents: row.try_get("", "amount_cents")?,
                currency: row.try_get("", "currency")?,
                reason: row.try_get("", "reason")?,
                disputed_at: row.try_get("", "disputed_at")?,
            })
        })
        .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
    Ok(page(
        &req,
        "money",
        serde_json::json!({ "admin": admin.view(), "nav": "money", "title": "Money", "notice": query.text(), "refresh_ms": REFRESH_MS, "drawn_at": now_text(), "repairs": repairs, "disputes": disputes }),
    )?)
}
