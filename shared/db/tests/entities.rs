#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Checks that the entities agree with themselves (enum strings) and, against a migrated
//! database, with the schema (column types, enum values allowed by the CHECK constraints).

use chrono::{DurationRound, TimeDelta, Utc};
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, Database, DatabaseTransaction, EntityTrait,
    IntoActiveModel, Iterable, NotSet, QueryFilter, Set, TransactionTrait, sea_query::Expr,
};
use serde::Serialize;
use uuid::Uuid;

use orderly_db::bookings::BookingStatus;
use orderly_db::listings::ListingStatus;
use orderly_db::notifications::{NotificationChannel, NotificationKind, NotificationStatus};
use orderly_db::outbox::{OutboxStatus, Queue};
use orderly_db::payments::{PaymentProvider, PaymentStatus};
use orderly_db::schedule_runs::ScheduleRunStatus;
use orderly_db::users::Role;
use orderly_db::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn assert_one_spelling<E>(as_str: fn(E) -> &'static str)
where
    E: ActiveEnum<Value = String> + Iterable + Serialize + Copy + std::fmt::Debug,
{
    for variant in E::iter() {
        let json = serde_json::to_value(variant).unwrap_or_default();
        assert_eq!(
            variant.to_value(),
            as_str(variant),
            "{variant:?}: database value"
        );
        assert_eq!(json, as_str(variant), "{variant:?}: JSON value");
    }
}

#[test]
fn every_enum_is_spelled_the_same_in_the_database_in_json_and_by_as_str() {
    assert_one_spelling(Role::as_str);
    assert_one_spelling(ListingStatus::as_str);
    assert_one_spelling(BookingStatus::as_str);
    assert_one_spelling(PaymentProvider::as_str);
    assert_one_spelling(PaymentStatus::as_str);
    assert_one_spelling(payment_refunds::RefundSource::as_str);
    assert_one_spelling(NotificationChannel::as_str);
    assert_one_spelling(NotificationKind::as_str);
    assert_one_spelling(NotificationStatus::as_str);
    assert_one_spelling(Queue::as_str);
    assert_one_spelling(OutboxStatus::as_str);
    assert_one_spelling(ScheduleRunStatus::as_str);
}

/// A timestamp that survives PostgreSQL's microsecond precision unchanged.
fn now() -> sea_orm::prelude::DateTimeWithTimeZone {
    Utc::now()
        .duration_trunc(TimeDelta::seconds(1))
        .unwrap_or_default()
        .fixed_offset()
}

/// Writes `model`, reads it back by primary key and checks nothing changed on the way.
async fn round_trip<M>(txn: &DatabaseTransaction, model: M) -> Result<M, sea_orm::DbErr>
where
    M: IntoActiveModel<<M::Entity as EntityTrait>::ActiveModel>
        + sea_orm::ModelTrait
        + Clone
        + PartialEq
        + std::fmt::Debug,
    <M::Entity as EntityTrait>::ActiveModel:
        ActiveModelTrait<Entity = M::Entity> + sea_orm::ActiveModelBehavior + Send,
    M::Entity: EntityTrait<Model = M>,
{
    let written = model.clone().into_active_model().insert(txn).await?;
    assert_eq!(written, model);
    Ok(written)
}

/// Sets `column` of every row of `E` to each variant in turn: each must pass the CHECK.
async fn every_variant_is_allowed<E, V>(txn: &DatabaseTransaction, column: E::Column) -> TestResult
where
    E: EntityTrait,
    V: ActiveEnum<Value = String> + Iterable + std::fmt::Debug,
{
    for variant in V::iter() {
        let updated = E::update_many()
            .col_expr(column, Expr::value(variant.to_value()))
            .exec(txn)
            .await
            .map_err(|e| format!("{variant:?} refused: {e}"))?;
        assert!(
            updated.rows_affected > 0,
            "no row to update for {variant:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn every_entity_round_trips_through_the_migrated_schema() -> TestResult {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A database of its own, cloned from the migrated template (see deploy/test.sh).
    let url = orderly_testing::create_test_database(&orderly_testing::test_id()).await;
    let db = Database::connect(url).await?;
    let txn = db.begin().await?;
    let t = now();

    let user = round_trip(
        &txn,
        users::Model {
            id: Uuid::now_v7(),
            email: format!("{}@example.test", Uuid::now_v7()),
            password_hash: "$argon2id$v=19$...".into(),
            name: "Ada".into(),
            phone: Some("+4915112345678".into()),
            role: Role::Provider,
            created_at: t,
            updated_at: t,
        },
    )
    .await?;
    let token = round_trip(
        &txn,
        refresh_tokens::Model {
            id: Uuid::now_v7(),
            user_id: user.id,
            family_id: Uuid::now_v7(),
            token_hash: "ab".repeat(32),
            expires_at: t,
            used_at: Some(t),
            revoked_at: None,
            replaced_by: None,
            created_at: t,
        },
    )
    .await?;
    round_trip(
        &txn,
        refresh_tokens::Model {
            id: Uuid::now_v7(),
            token_hash: "cd".repeat(32),
            replaced_by: Some(token.id),
            ..token.clone()
        },
    )
    .await?;
    round_trip(
        &txn,
        idempotency_keys::Model {
            user_id: user.id,
            key: "key-1".into(),
            method: "POST".into(),
            path: "/api/v1/bookings".into(),
            request_hash: "00".into(),
            response_status: Some(201),
            response_body: Some(b"{\"id\":1}".to_vec()),
            created_at: t,
            expires_at: t,
        },
    )
    .await?;
    let listing = round_trip(
        &txn,
        listings::Model {
            id: Uuid::now_v7(),
            provider_id: user.id,
            title: "Pottery".into(),
            description: String::new(),
            starts_at: t,
            capacity: 10,
            seats_left: 8,
            price_cents: 2500,
            currency: "eur".into(),
            status: ListingStatus::Published,
            created_at: t,
            updated_at: t,
        },
    )
    .await?;
    let booking = round_trip(
        &txn,
        bookings::Model {
            id: Uuid::now_v7(),
            listing_id: listing.id,
            customer_id: user.id,
            quantity: 2,
            amount_cents: 5000,
            currency: "eur".into(),
            status: BookingStatus::PendingPayment,
            hold_expires_at: t,
            idempotency_key: Some("key-1".into()),
            request_id: Some("req-1".into()),
            confirmed_at: None,
            paid_at: Some(t),
            expired_at: None,
            cancelled_at: None,
            refunded_at: None,
            created_at: t,
            updated_at: t,
        },
    )
    .await?;
    let payment = round_trip(
        &txn,
        payments::Model {
            id: Uuid::now_v7(),
            booking_id: booking.id,
            provider: PaymentProvider::Stripe,
            provider_payment_id: Some(format!("pi_{}", Uuid::now_v7().simple())),
            status: PaymentStatus::Authorized,
            amount_cents: 5000,
            currency: "eur".into(),
            client_secret: Some("pi_secret".into()),
            amount_captured_cents: 5000,
            amount_refunded_cents: 1000,
            captured_at: Some(t),
            cancelled_at: None,
            refunded_at: Some(t),
            last_error: None,
            provider_attempts: 2,
            disputed_at: Some(t),
            dispute_reason: Some("fraudulent".into()),
            reconciled_at: Some(t),
            created_at: t,
            updated_at: t,
        },
    )
    .await?;
    round_trip(
        &txn,
        payment_refunds::Model {
            id: format!("re_{}", Uuid::now_v7().simple()),
            payment_id: payment.id,
            amount_cents: 1000,
            currency: "eur".into(),
            source: payment_refunds::RefundSource::Provider,
            refunded_at: t,
        },
    )
    .await?;
    round_trip(
        &txn,
        payment_repairs::Model {
            id: Uuid::now_v7(),
            booking_id: booking.id,
            mismatch: "refunded_at_provider".into(),
            action: "recorded the refund".into(),
            created_at: t,
        },
    )
    .await?;
    round_trip(
        &txn,
        notifications::Model {
            id: Uuid::now_v7(),
            dedup_key: format!("booking:{}:email:booking_confirmed", booking.id),
            booking_id: Some(booking.id),
            user_id: Some(user.id),
            channel: NotificationChannel::Email,
            kind: NotificationKind::BookingConfirmed,
            recipient: user.email.clone(),
            subject: Some("Booked".into()),
            status: NotificationStatus::Pending,
            attempts: 0,
            last_error: None,
            provider_message_id: None,
            sent_at: None,
            sending_until: None,
            report_date: None,
            created_at: t,
            updated_at: t,
        },
    )
    .await?;
    round_trip(
        &txn,
        outbox::Model {
            id: Uuid::now_v7(),
            queue: Queue::Email,
            job_type: "send_email".into(),
            payload: serde_json::json!({"booking_id": booking.id}),
            task_id: format!("send_email:{}", booking.id),
            run_at: t,
            request_id: None,
            status: OutboxStatus::Pending,
            attempts: 0,
            lease_until: None,
            enqueued_at: None,
            completed_at: None,
            last_error: None,
            started_at: None,
            locked_by: None,
            worker_losses: 0,
            created_at: t,
            updated_at: t,
        },
    )
    .await?;
    round_trip(
        &txn,
        processed_webhook_events::Model {
            event_id: format!("evt_{}", Uuid::now_v7().simple()),
            event_type: "payment_intent.succeeded".into(),
            received_at: t,
            payload: Some("{}".into()),
            applied_at: Some(t),
        },
    )
    .await?;
    round_trip(
        &txn,
        daily_reports::Model {
            report_date: chrono::NaiveDate::from_ymd_opt(1999, 12, 31).unwrap_or_default(),
            timezone: "Europe/Berlin".into(),
            generated_at: t,
            report: serde_json::json!({"totals": [], "listings": []}),
        },
    )
    .await?;
    round_trip(
        &txn,
        schedule_runs::Model {
            schedule_name: format!("test-{}", Uuid::now_v7()),
            scheduled_for: t,
            leader: "host:1".into(),
            started_at: t,
            finished_at: None,
            status: ScheduleRunStatus::Running,
            error: None,
            task_id: Some("noop:test".into()),
        },
    )
    .await?;
    let entry = audit_log::ActiveModel {
        id: NotSet,
        actor_id: Set(Some(user.id)),
        action: Set("booking.cancel".into()),
        entity_type: Set("booking".into()),
        entity_id: Set(booking.id.to_string()),
        details: Set(serde_json::json!({"reason": "test"})),
        request_id: Set(None),
        created_at: Set(t),
    }
    .insert(&txn)
    .await?;
    let found = audit_log::Entity::find()
        .filter(audit_log::Column::Id.eq(entry.id))
        .one(&txn)
        .await?;
    assert_eq!(found, Some(entry));

    every_variant_is_allowed::<users::Entity, Role>(&txn, users::Column::Role).await?;
    every_variant_is_allowed::<listings::Entity, ListingStatus>(&txn, listings::Column::Status)
        .await?;
    every_variant_is_allowed::<bookings::Entity, BookingStatus>(&txn, bookings::Column::Status)
        .await?;
    every_variant_is_allowed::<payments::Entity, PaymentProvider>(&txn, payments::Column::Provider)
        .await?;
    every_variant_is_allowed::<payments::Entity, PaymentStatus>(&txn, payments::Column::Status)
        .await?;
    every_variant_is_allowed::<notifications::Entity, NotificationChannel>(
        &txn,
        notifications::Column::Channel,
    )
    .await?;
    every_variant_is_allowed::<notifications::Entity, NotificationKind>(
        &txn,
        notifications::Column::Kind,
    )
    .await?;
    every_variant_is_allowed::<notifications::Entity, NotificationStatus>(
        &txn,
        notifications::Column::Status,
    )
    .await?;
    every_variant_is_allowed::<outbox::Entity, Queue>(&txn, outbox::Column::Queue).await?;
    every_variant_is_allowed::<outbox::Entity, OutboxStatus>(&txn, outbox::Column::Status).await?;
    every_variant_is_allowed::<schedule_runs::Entity, ScheduleRunStatus>(
        &txn,
        schedule_runs::Column::Status,
    )
    .await?;

    // Relations resolve to the foreign keys the schema declares.
    let (_, provider) = listings::Entity::find_by_id(listing.id)
        .find_also_related(users::Entity)
        .one(&txn)
        .await?
        .ok_or("listing not found")?;
    assert_eq!(provider.map(|u| u.id), Some(user.id));

    txn.rollback().await?;
    Ok(())
}
