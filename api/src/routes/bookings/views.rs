//! A booking as the API shows it, with its payment and messages.

use chrono::{DateTime, Utc};
use orderly_shared::entities::bookings::{self, BookingStatus};
use orderly_shared::entities::notifications::{
    self, NotificationChannel, NotificationKind, NotificationStatus,
};
use orderly_shared::entities::payments::{self, PaymentProvider, PaymentStatus};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

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
    /// Price × quantity, minor units.
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
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationView {
    /// `email` or `sms`.
    pub channel: NotificationChannel,
    /// What it says.
    pub kind: NotificationKind,
    /// `pending`, `sending`, `sent` or `failed`.
    pub status: NotificationStatus,
    /// When it went out.
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
            .ok_or_else(|| DbErr::Custom("a booking vanished while loading".into()))
    }
}
