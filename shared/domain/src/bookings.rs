//! Booking rules: create, confirm on authorisation, expire, cancel. Each runs in one
//! transaction holding the booking's (and, where seats move, the listing's) row lock, and
//! checks the booking's status first, so running it twice changes nothing the second time.

use std::time::Duration;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, IntoActiveModel, JoinType, PaginatorTrait, QueryFilter, QuerySelect,
    RelationTrait, Set, SqlErr, TransactionTrait,
};
use uuid::Uuid;

use super::seats::{self, SeatError};
use orderly_db::bookings::{self, BookingStatus};
use orderly_db::listings::{self, ListingStatus};
use orderly_db::notifications::{self, NotificationChannel, NotificationKind};
use orderly_db::payments::{self, PaymentStatus};
use orderly_db::users;
use orderly_jobs::outbox::NewJob;
use orderly_jobs::wake;
use orderly_jobs::{
    CancelPayment, CapturePayment, CreatePayment, ExpireBooking, Job, RefundPayment, outbox,
};
use orderly_providers::ProviderError;
use orderly_providers::payments::PaymentGateway;

use super::notifications::{self as messages, notify};

/// Why a booking operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum BookingError {
    /// No such listing.
    #[error("no such listing")]
    ListingNotFound,
    /// The listing cannot be booked (cancelled, or already started).
    #[error("{0}")]
    ListingUnavailable(&'static str),
    /// Not enough seats.
    #[error(transparent)]
    SoldOut(#[from] SeatError),
    /// No such booking.
    #[error("no such booking")]
    NotFound,
    /// The booking's status does not allow it.
    #[error("the booking is {}", .0.as_str())]
    WrongStatus(BookingStatus),
    /// A customer's cancel of a booking whose payment went through, too close to the
    /// listing's start (`CANCELLATION_CUTOFF_HOURS`).
    #[error("the booking can no longer be cancelled: the listing starts too soon")]
    CancellationClosed,
    /// The customer already holds as many unpaid bookings as allowed.
    #[error("you already hold {0} unpaid bookings; pay or cancel one first")]
    TooManyHolds(u32),
    /// The customer already made a booking with this idempotency key.
    #[error("a booking with this idempotency key already exists")]
    DuplicateKey,
    /// The payment provider refused the booking's payment while the request was served (the
    /// booking is then withdrawn: `checkout::book`).
    #[error("payment provider: {0}")]
    Payment(ProviderError),
    /// Database trouble.
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// When the `create_payment` safety net runs after a booking is made.
pub const PAYMENT_SAFETY_NET_SECONDS: i64 = 10;

/// What a customer asks for.
#[derive(Debug, Clone)]
pub struct NewBooking {
    /// Who books.
    pub customer_id: Uuid,
    /// What.
    pub listing_id: Uuid,
    /// How many seats (1..=20, checked by the caller).
    pub quantity: i32,
    /// The request's `Idempotency-Key`, if any.
    pub idempotency_key: Option<String>,
    /// The request's `X-Request-Id`.
    pub request_id: Option<String>,
    /// Unpaid (`pending_payment`) bookings the customer may already hold
    /// (`MAX_OPEN_HOLDS_PER_CUSTOMER`); `None` for no cap.
    pub max_open_holds: Option<u32>,
}

/// A booking just made, waiting for its payment.
#[derive(Debug, Clone)]
pub struct Created {
    /// The booking: `pending_payment`.
    pub booking: bookings::Model,
    /// Its payment: `creating` (the payment step makes it at the provider).
    pub payment: payments::Model,
}

/// Refuses a customer who already holds `max` unpaid bookings. The customer's row is locked
/// first (before any listing, always in that order), so two bookings racing for the last
/// hold are counted one after the other: the cap is exact.
async fn check_open_holds(
    txn: &DatabaseTransaction,
    customer_id: Uuid,
    max: u32,
) -> Result<(), BookingError> {
    users::Entity::find_by_id(customer_id)
        .lock_exclusive()
        .one(txn)
        .await?;
    let open = bookings::Entity::find()
        .filter(bookings::Column::CustomerId.eq(customer_id))
        .filter(bookings::Column::Status.eq(BookingStatus::PendingPayment))
        .count(txn)
        .await?;
    if open >= u64::from(max) {
        return Err(BookingError::TooManyHolds(max));
    }
    Ok(())
}

/// Takes the seats and records the booking, its payment (`creating`), its expiry job and
/// the `create_payment` safety net, in one short transaction of the same shape as the
/// plain-SQL baseline of `deploy/bench.sh`. No provider is asked here: the payment step
/// (`payments::start`) runs after the commit, with no lock held. `gateway` names the
/// payment's provider.
pub async fn create(
    db: &DatabaseConnection,
    hold: Duration,
    gateway: &dyn PaymentGateway,
    new: NewBooking,
) -> Result<Created, BookingError> {
    let txn = db.begin().await?;
    if let Some(max) = new.max_open_holds {
        check_open_holds(&txn, new.customer_id, max).await?;
    }
    let listing = listings::Entity::find_by_id(new.listing_id)
        .lock_exclusive()
        .one(&txn)
        .await?
        .ok_or(BookingError::ListingNotFound)?;
    let now = Utc::now();
    if listing.status != ListingStatus::Published {
        return Err(BookingError::ListingUnavailable("the listing is cancelled"));
    }
    if listing.starts_at <= now {
        return Err(BookingError::ListingUnavailable(
            "the listing has already started",
        ));
    }
    let seats_left = seats::take(listing.seats_left, new.quantity)?;
    let amount_cents = listing.price_cents * i64::from(new.quantity);
    let currency = listing.currency.clone();
    let mut listing = listing.into_active_model();
    listing.seats_left = Set(seats_left);
    listing.updated_at = Set(now.into());
    listing.update(&txn).await?;

    let hold_expires_at =
        now + chrono::Duration::from_std(hold).unwrap_or(chrono::Duration::minutes(15));
    let booking = bookings::ActiveModel {
        id: Set(Uuid::now_v7()),
        listing_id: Set(new.listing_id),
        customer_id: Set(new.customer_id),
        quantity: Set(new.quantity),
        amount_cents: Set(amount_cents),
        currency: Set(currency.clone()),
        status: Set(BookingStatus::PendingPayment),
        hold_expires_at: Set(hold_expires_at.into()),
        idempotency_key: Set(new.idempotency_key),
        request_id: Set(new.request_id.clone()),
        confirmed_at: Set(None),
        paid_at: Set(None),
        expired_at: Set(None),
        cancelled_at: Set(None),
        refunded_at: Set(None),
        created_at: Set(now.into()),
        updated_at: Set(now.into()),
    }
    .insert(&txn)
    .await
    .map_err(|e| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => BookingError::DuplicateKey,
        _ => BookingError::Db(e),
    })?;
    let payment = payments::ActiveModel {
        id: Set(Uuid::now_v7()),
        booking_id: Set(booking.id),
        provider: Set(gateway.provider()),
        provider_payment_id: Set(None),
        status: Set(PaymentStatus::Creating),
        amount_cents: Set(amount_cents),
        currency: Set(currency),
        client_secret: Set(None),
        amount_captured_cents: Set(0),
        amount_refunded_cents: Set(0),
        captured_at: Set(None),
        cancelled_at: Set(None),
        refunded_at: Set(None),
        last_error: Set(None),
        provider_attempts: Set(0),
        disputed_at: Set(None),
        dispute_reason: Set(None),
        reconciled_at: Set(None),
        created_at: Set(now.into()),
        updated_at: Set(now.into()),
    }
    .insert(&txn)
    .await?;
    let request_id = new.request_id.as_deref();
    let jobs = [
        NewJob::of(
            &ExpireBooking {
                booking_id: booking.id,
            },
            Some(hold_expires_at),
            request_id,
        )?,
        // The request creates the payment right after this commit; should it die first,
        // this job does it (and finds nothing to do otherwise).
        NewJob::of(
            &CreatePayment {
                booking_id: booking.id,
            },
            Some(now + chrono::Duration::seconds(PAYMENT_SAFETY_NET_SECONDS)),
            request_id,
        )?,
    ];
    outbox::enqueue_many(&txn, &jobs).await?;
    wake::commit(db, txn).await?;
    tracing::info!(booking.id = %booking.id, listing.id = %booking.listing_id, booking.quantity = booking.quantity, "booking created");
    Ok(Created { booking, payment })
}

/// What confirming a booking asks for, written in one statement: the confirmation e-mail
/// and SMS and their jobs, and the payment's capture.
async fn confirm(
    txn: &DatabaseTransaction,
    booking_id: Uuid,
    customer_id: Uuid,
    request_id: Option<&str>,
) -> Result<Vec<notifications::Model>, BookingError> {
    let jobs = [NewJob::of(
        &CapturePayment {
            booking_id,
            round: 0,
        },
        None,
        request_id,
    )?];
    Ok(messages::ask(
        txn,
        booking_id,
        customer_id,
        &[
            (
                NotificationChannel::Email,
                NotificationKind::BookingConfirmed,
            ),
            (NotificationChannel::Sms, NotificationKind::BookingConfirmed),
        ],
        &jobs,
        request_id,
    )
    .await?)
}

/// Reads a booking and its payment without locking them (one statement): what a step that
/// calls a provider decides from, before it locks them again to record the answer.
pub async fn read(
    db: &impl ConnectionTrait,
    booking_id: Uuid,
) -> Result<Option<(bookings::Model, payments::Model)>, BookingError> {
    match bookings::Entity::find_by_id(booking_id)
        .select_also(payments::Entity)
        .join(JoinType::InnerJoin, bookings::Relation::Payment.def())
        .one(db)
        .await?
    {
        Some((booking, Some(payment))) => Ok(Some((booking, payment))),
        _ => Ok(None),
    }
}

/// Locks a booking and its payment inside `txn` (one statement).
pub async fn lock(
    txn: &DatabaseTransaction,
    booking_id: Uuid,
) -> Result<(bookings::Model, payments::Model), BookingError> {
    match bookings::Entity::find_by_id(booking_id)
        .select_also(payments::Entity)
        .join(JoinType::InnerJoin, bookings::Relation::Payment.def())
        .lock_exclusive()
        .one(txn)
        .await?
    {
        Some((booking, Some(payment))) => Ok((booking, payment)),
        _ => Err(BookingError::NotFound),
    }
}

/// The payment was authorised (a webhook, or the provider's answer when the payment was
/// made): confirm the booking, tell the customer, queue the capture. Returns `false` when
/// there was nothing to do. An authorisation that arrives after the booking expired or was
/// cancelled is cancelled instead (a booking still `pending_payment` is confirmed, even if
/// its hold has just run out: its seats are still held). The caller has locked the booking
/// and its payment in `txn` and records the provider's answer in it.
pub async fn authorize(
    txn: &DatabaseTransaction,
    booking: bookings::Model,
    payment: payments::Model,
    request_id: Option<&str>,
) -> Result<bool, BookingError> {
    let now = Utc::now();
    let booking_id = booking.id;
    if booking.status != BookingStatus::PendingPayment {
        if matches!(
            booking.status,
            BookingStatus::Expired | BookingStatus::Cancelled
        ) && payment.status != PaymentStatus::Authorized
        {
            // The money is held now: release it, as a job of its own (the first
            // cancellation may have run already).
            let mut p = payment.into_active_model();
            p.status = Set(PaymentStatus::Authorized);
            p.updated_at = Set(now.into());
            p.update(txn).await?;
            outbox::enqueue_next_round(
                txn,
                |round| CancelPayment { booking_id, round },
                request_id,
            )
            .await?;
        }
        return Ok(false);
    }
    // Only an unpaid booking expires: its expiry job, not yet due, goes with its hold.
    outbox::withdraw(txn, &[ExpireBooking { booking_id }.dedup_key()]).await?;
    mark_confirmed(txn, booking, payment, request_id).await?;
    tracing::info!(booking.id = %booking_id, "booking confirmed");
    Ok(true)
}

/// Records a booking confirmed and its payment authorised, with what confirming asks for
/// (the confirmation e-mail and SMS, the capture). The caller holds both rows' locks.
async fn mark_confirmed(
    txn: &DatabaseTransaction,
    booking: bookings::Model,
    payment: payments::Model,
    request_id: Option<&str>,
) -> Result<(), BookingError> {
    let now = Utc::now();
    let (booking_id, customer_id) = (booking.id, booking.customer_id);
    let mut b = booking.into_active_model();
    b.status = Set(BookingStatus::Confirmed);
    b.confirmed_at = Set(Some(now.into()));
    b.expired_at = Set(None);
    b.updated_at = Set(now.into());
    b.update(txn).await?;
    let mut p = payment.into_active_model();
    p.status = Set(PaymentStatus::Authorized);
    p.updated_at = Set(now.into());
    p.update(txn).await?;
    confirm(txn, booking_id, customer_id, request_id).await?;
    Ok(())
}

/// An expired booking whose payment turns out authorised after all (the customer paid as
/// the hold ended, and nothing told us in time): if its listing is still open and has the
/// seats, it takes them again and is confirmed as if the authorisation had come in time
/// (messages and capture queued). Returns whether it was; the caller holds the booking's
/// and payment's locks in `txn` and commits.
pub async fn reinstate(
    txn: &DatabaseTransaction,
    booking: bookings::Model,
    payment: payments::Model,
    request_id: Option<&str>,
) -> Result<bool, BookingError> {
    if booking.status != BookingStatus::Expired {
        return Ok(false);
    }
    let listing = listings::Entity::find_by_id(booking.listing_id)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or(BookingError::ListingNotFound)?;
    let now = Utc::now();
    if listing.status != ListingStatus::Published || listing.starts_at <= now {
        return Ok(false);
    }
    let Ok(seats_left) = seats::take(listing.seats_left, booking.quantity) else {
        return Ok(false);
    };
    let mut l = listing.into_active_model();
    l.seats_left = Set(seats_left);
    l.updated_at = Set(now.into());
    l.update(txn).await?;
    let booking_id = booking.id;
    mark_confirmed(txn, booking, payment, request_id).await?;
    tracing::warn!(booking.id = %booking_id, "an expired booking's payment was authorised: seats taken again and the booking confirmed");
    Ok(true)
}

/// The hold ran out: if the booking is still unpaid, expire it, return its seats (once),
/// tell the customer and queue the payment's cancellation. Returns whether it expired.
pub async fn expire(
    db: &DatabaseConnection,
    booking_id: Uuid,
    request_id: Option<&str>,
) -> Result<bool, BookingError> {
    let txn = db.begin().await?;
    let (booking, _payment) = lock(&txn, booking_id).await?;
    if booking.status != BookingStatus::PendingPayment {
        return Ok(false);
    }
    release(
        &txn,
        booking,
        BookingStatus::Expired,
        NotificationKind::HoldExpired,
        request_id,
    )
    .await?;
    outbox::enqueue(
        &txn,
        &CancelPayment {
            booking_id,
            round: 0,
        },
        None,
        request_id,
    )
    .await?;
    wake::commit(db, txn).await?;
    tracing::info!(booking.id = %booking_id, "booking expired; seats returned");
    Ok(true)
}

/// Up to `limit` unpaid bookings whose hold ended more than `late` ago (their
/// `expire_booking` job was lost or is far behind), for the sweep.
pub async fn overdue(
    db: &DatabaseConnection,
    late: Duration,
    limit: u64,
) -> Result<Vec<Uuid>, BookingError> {
    let late = chrono::Duration::from_std(late).unwrap_or(chrono::Duration::minutes(1));
    Ok(bookings::Entity::find()
        .select_only()
        .column(bookings::Column::Id)
        .filter(bookings::Column::Status.eq(BookingStatus::PendingPayment))
        .filter(bookings::Column::HoldExpiresAt.lt(Utc::now() - late))
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?)
}

/// Who cancels a booking, and so which rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelledBy {
    /// The customer: a booking whose payment went through (`confirmed` or `paid`) can no
    /// longer be cancelled within `cutoff` of the listing's start.
    Customer {
        /// `CANCELLATION_CUTOFF_HOURS`.
        cutoff: Duration,
    },
    /// An admin: always (a paid booking is refunded).
    Admin,
}

/// Cancels a booking for its customer or an admin: seats return; an authorised payment is
/// cancelled, a captured one refunded (each a job written with the cancellation); the
/// customer is told. A customer's cancel of a booking whose payment went through, within
/// the cutoff of the listing's start, is refused ([`BookingError::CancellationClosed`]).
pub async fn cancel(
    db: &DatabaseConnection,
    booking_id: Uuid,
    by: CancelledBy,
    request_id: Option<&str>,
) -> Result<bookings::Model, BookingError> {
    let txn = db.begin().await?;
    let (booking, _payment) = lock(&txn, booking_id).await?;
    let was = booking.status;
    if !matches!(
        was,
        BookingStatus::PendingPayment | BookingStatus::Confirmed | BookingStatus::Paid
    ) {
        return Err(BookingError::WrongStatus(was));
    }
    if let CancelledBy::Customer { cutoff } = by
        && was != BookingStatus::PendingPayment
    {
        let starts_at = listings::Entity::find_by_id(booking.listing_id)
            .select_only()
            .column(listings::Column::StartsAt)
            .into_tuple::<chrono::DateTime<chrono::FixedOffset>>()
            .one(&txn)
            .await?
            .ok_or(BookingError::ListingNotFound)?;
        let closes_at = chrono::Duration::from_std(cutoff)
            .ok()
            .and_then(|cutoff| starts_at.checked_sub_signed(cutoff));
        if closes_at.is_none_or(|closes_at| Utc::now() >= closes_at) {
            return Err(BookingError::CancellationClosed);
        }
    }
    let booking = release(
        &txn,
        booking,
        BookingStatus::Cancelled,
        NotificationKind::BookingCancelled,
        request_id,
    )
    .await?;
    // A live round of the payment's job, even if an earlier round ended (a booking that
    // expired, was confirmed again by the reconciliation, then cancelled).
    if was == BookingStatus::Paid {
        outbox::ensure_live_round(
            &txn,
            |round| RefundPayment { booking_id, round },
            request_id,
        )
        .await?;
    } else {
        outbox::ensure_live_round(
            &txn,
            |round| CancelPayment { booking_id, round },
            request_id,
        )
        .await?;
    }
    wake::commit(db, txn).await?;
    tracing::info!(booking.id = %booking_id, booking.was = was.as_str(), "booking cancelled; seats returned");
    Ok(booking)
}

/// Withdraws a booking whose payment the provider refused while the request was served:
/// its seats return and the booking, its payment and its jobs not yet queued are deleted,
/// so the refused request keeps nothing.
pub async fn withdraw(db: &DatabaseConnection, booking_id: Uuid) -> Result<(), BookingError> {
    let txn = db.begin().await?;
    let (booking, _payment) = lock(&txn, booking_id).await?;
    if booking.status != BookingStatus::PendingPayment {
        return Err(BookingError::WrongStatus(booking.status));
    }
    return_seats(&txn, &booking).await?;
    outbox::withdraw(
        &txn,
        &[
            ExpireBooking { booking_id }.dedup_key(),
            CreatePayment { booking_id }.dedup_key(),
        ],
    )
    .await?;
    bookings::Entity::delete_by_id(booking_id)
        .exec(&txn)
        .await?;
    txn.commit().await?;
    tracing::info!(booking.id = %booking_id, "booking withdrawn: its payment was refused");
    Ok(())
}

/// Ends a booking that still holds seats (`expired` or `cancelled`): its seats return, its
/// status and the matching timestamp change, and the customer is told with `kind`.
pub async fn release(
    txn: &DatabaseTransaction,
    booking: bookings::Model,
    status: BookingStatus,
    kind: NotificationKind,
    request_id: Option<&str>,
) -> Result<bookings::Model, BookingError> {
    return_seats(txn, &booking).await?;
    advance(txn, booking, status, kind, request_id).await
}

/// Moves a booking to `status`, stamping the matching time, and e-mails its customer
/// `kind`. The caller holds the booking's lock and has checked the move is allowed.
pub async fn advance(
    txn: &DatabaseTransaction,
    booking: bookings::Model,
    status: BookingStatus,
    kind: NotificationKind,
    request_id: Option<&str>,
) -> Result<bookings::Model, BookingError> {
    let now = Utc::now();
    let customer_id = booking.customer_id;
    let mut b = booking.into_active_model();
    b.status = Set(status);
    let stamp = Set(Some(now.into()));
    match status {
        BookingStatus::Confirmed => b.confirmed_at = stamp,
        BookingStatus::Paid => b.paid_at = stamp,
        BookingStatus::Expired => b.expired_at = stamp,
        BookingStatus::Cancelled => b.cancelled_at = stamp,
        BookingStatus::Refunded => b.refunded_at = stamp,
        BookingStatus::PendingPayment => {}
    }
    b.updated_at = Set(now.into());
    let booking = b.update(txn).await?;
    notify(
        txn,
        booking.id,
        customer_id,
        NotificationChannel::Email,
        kind,
        request_id,
    )
    .await?;
    Ok(booking)
}

/// Gives a booking's seats back to its listing (the caller holds the booking's lock and
/// has checked that its seats are still held).
async fn return_seats(
    txn: &DatabaseTransaction,
    booking: &bookings::Model,
) -> Result<(), BookingError> {
    let listing = listings::Entity::find_by_id(booking.listing_id)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or(BookingError::ListingNotFound)?;
    let seats_left = seats::give_back(listing.seats_left, listing.capacity, booking.quantity);
    let mut l = listing.into_active_model();
    l.seats_left = Set(seats_left);
    l.updated_at = Set(Utc::now().into());
    l.update(txn).await?;
    Ok(())
}
