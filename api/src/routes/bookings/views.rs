//! A booking as the API shows it, with its payment and messages.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use orderly_db::bookings::{self, BookingStatus};
use orderly_db::notifications::{self, NotificationChannel, NotificationKind, NotificationStatus};
use orderly_db::payments::{self, PaymentProvider, PaymentStatus};
use orderly_db::sql;
use orderly_db::sql::stmt;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

sql! {
    /// Booking `$1` with its listing's provider, its payment and its messages.
    FETCH = "SELECT b.id, b.listing_id, b.customer_id, b.quantity, b.amount_cents, b.currency, b.status,
                    b.hold_expires_at, b.created_at, b.updated_at, l.provider_id,
                    p.provider AS payment_provider, p.status AS payment_status, p.client_secret,
                    COALESCE((SELECT json_agg(json_build_object('channel', n.channel, 'kind', n.kind,
                                                                'status', n.status, 'sent_at', n.sent_at)
                                              ORDER BY n.created_at)
                                FROM notifications n WHERE n.booking_id = b.id), '[]'::json) AS notifications
               FROM bookings b
               JOIN listings l ON l.id = b.listing_id
               LEFT JOIN payments p ON p.booking_id = b.id
              WHERE b.id = $1";
}

/// A booking.
#[derive(Debug, Serialize, ToSchema)]
pub struct BookingView {
    /// Id.
    pub id: Uuid,
    /// What was booked.
    pub listing_id: Uuid,
    /// Who booked.
    pub customer_id: Uuid,
    /// Seats.
    pub quantity: i32,
    /// Price × quantity, in the currency's minor unit (cents for `eur`; `jpy` has none, so
    /// 1 yen is 1).
    pub amount_cents: i64,
    /// ISO 4217, lower case.
    pub currency: String,
    /// `pending_payment`, `confirmed`, `paid`, `expired`, `cancelled` or `refunded`.
    pub status: BookingStatus,
    /// When an unpaid booking gives its seats back.
    pub hold_expires_at: DateTime<Utc>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// The payment.
    pub payment: PaymentView,
    /// Messages sent or to be sent about it.
    pub notifications: Vec<NotificationView>,
}

/// A booking's payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentView {
    /// `stripe` or `simulated`.
    pub provider: PaymentProvider,
    /// `creating`, `requires_payment`, `authorized`, `captured`, `cancelled`, `refunded` or `failed`.
    pub status: PaymentStatus,
    /// What the frontend needs to pay; shown to the booking's customer only, once created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

/// One message about a booking.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
pub struct NotificationView {
    /// `email` or `sms`.
    pub channel: NotificationChannel,
    /// What it says.
    pub kind: NotificationKind,
    /// `pending`, `sending`, `sent` or `failed`.
    pub status: NotificationStatus,
    /// When it went out; `null` until then.
    #[schema(required = true)]
    pub sent_at: Option<DateTime<Utc>>,
}

impl BookingView {
    /// Assembles the view; `client_secret` only when `show_secret`.
    pub fn new(
        booking: bookings::Model,
        payment: Option<payments::Model>,
        notes: Vec<notifications::Model>,
        show_secret: bool,
    ) -> Self {
        let payment = match payment {
            Some(p) => PaymentView {
                provider: p.provider,
                status: p.status,
                client_secret: if show_secret { p.client_secret } else { None },
            },
            None => PaymentView {
                provider: PaymentProvider::Simulated,
                status: PaymentStatus::Creating,
                client_secret: None,
            },
        };
        Self {
            id: booking.id,
            listing_id: booking.listing_id,
            customer_id: booking.customer_id,
            quantity: booking.quantity,
            amount_cents: booking.amount_cents,
            currency: booking.currency,
            status: booking.status,
            hold_expires_at: booking.hold_expires_at.into(),
            created_at: booking.created_at.into(),
            updated_at: booking.updated_at.into(),
            payment,
            notifications: notes
                .into_iter()
                .map(|n| NotificationView {
                    channel: n.channel,
                    kind: n.kind,
                    status: n.status,
                    sent_at: n.sent_at.map(Into::into),
                })
                .collect(),
        }
    }

    /// Loads the payments and notifications of `bookings` (two queries for the whole page)
    /// and assembles their views.
    pub async fn load_many(
        db: &impl ConnectionTrait,
        bookings: Vec<bookings::Model>,
        viewer: Uuid,
    ) -> Result<Vec<Self>, DbErr> {
        let ids: Vec<Uuid> = bookings.iter().map(|b| b.id).collect();
        let mut payments = payments::Entity::find()
            .filter(payments::Column::BookingId.is_in(ids.clone()))
            .all(db)
            .await?;
        let mut notes = notifications::Entity::find()
            .filter(notifications::Column::BookingId.is_in(ids))
            .order_by_asc(notifications::Column::CreatedAt)
            .all(db)
            .await?;
        Ok(bookings
            .into_iter()
            .map(|b| {
                let payment = payments
                    .iter()
                    .position(|p| p.booking_id == b.id)
                    .map(|i| payments.swap_remove(i));
                let mine: Vec<_> = notes
                    .extract_if(.., |n| n.booking_id == Some(b.id))
                    .collect();
                let show_secret = b.customer_id == viewer;
                Self::new(b, payment, mine, show_secret)
            })
            .collect())
    }

    /// Loads one booking's view.
    pub async fn load(
        db: &impl ConnectionTrait,
        booking: bookings::Model,
        viewer: Uuid,
    ) -> Result<Self, DbErr> {
        let mut views = Self::load_many(db, vec![booking], viewer).await?;
        views
            .pop()
            .ok_or_else(|| DbErr::RecordNotFound("a booking vanished while loading".into()))
    }
}

/// One booking with everything its view shows, read in a single query.
#[derive(Debug, FromQueryResult)]
struct BookingRow {
    id: Uuid,
    listing_id: Uuid,
    customer_id: Uuid,
    quantity: i32,
    amount_cents: i64,
    currency: String,
    status: BookingStatus,
    hold_expires_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    provider_id: Uuid,
    payment_provider: Option<PaymentProvider>,
    payment_status: Option<PaymentStatus>,
    client_secret: Option<String>,
    notifications: serde_json::Value,
}

/// A booking's view and the id of its listing's provider (who may see it).
#[derive(Debug)]
pub struct Fetched {
    /// The view (with the client secret; [`Fetched::for_viewer`] removes it).
    pub view: BookingView,
    /// The listing's provider.
    pub provider_id: Uuid,
}

impl Fetched {
    /// The view as `viewer` may see it.
    pub fn for_viewer(mut self, viewer: Uuid) -> BookingView {
        if self.view.customer_id != viewer {
            self.view.payment.client_secret = None;
        }
        self.view
    }
}

impl BookingView {
    /// Reads one booking's view in one round trip (the hot path of `GET /bookings/{id}`).
    /// `deploy/bench.sh` replays this query with pgbench as GET's baseline: change both.
    pub async fn fetch(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<Fetched>, DbErr> {
        let row = BookingRow::find_by_statement(stmt(&FETCH, [id.into()]))
            .one(db)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let notifications =
            serde_json::from_value(row.notifications).map_err(|e| DbErr::TryIntoErr {
                from: "jsonb",
                into: "a booking's notifications",
                source: Arc::new(e),
            })?;
        Ok(Some(Fetched {
            provider_id: row.provider_id,
            view: Self {
                id: row.id,
                listing_id: row.listing_id,
                customer_id: row.customer_id,
                quantity: row.quantity,
                amount_cents: row.amount_cents,
                currency: row.currency,
                status: row.status,
                hold_expires_at: row.hold_expires_at,
                created_at: row.created_at,
                updated_at: row.updated_at,
                payment: PaymentView {
                    provider: row.payment_provider.unwrap_or(PaymentProvider::Simulated),
                    status: row.payment_status.unwrap_or(PaymentStatus::Creating),
                    client_secret: row.client_secret,
                },
                notifications,
            },
        }))
    }
}
