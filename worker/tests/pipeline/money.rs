//! Money under provider faults, counted at the fake Stripe: a refund owed is made exactly
//! once whatever fails on the way; refunds made in Stripe's dashboard (in full and in part)
//! reach the booking and the report; a late authorisation is honoured, not expired; an event
//! this version cannot read is kept and applied once readable; a slow Stripe holds up no
//! other booking; the reconciliation repairs what disagrees and nothing else.

use std::time::{Duration, Instant};

use chrono::Utc;
use orderly_db::users::Role;
use orderly_domain::bookings::{self, CancelledBy};
use orderly_domain::payment_events::{self, Received};
use orderly_domain::reconcile::{self, Options};
use orderly_domain::{payments, reports};
use orderly_providers::stripe::parse_event;
use orderly_testing::stripe::{FakeStripe, Kind, event_payload};
use orderly_testing::wait_until;
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::fakes::FakeSmtp;
use crate::harness::Pipeline;
use crate::stripe::{
    DEADLINE, authorized_booking, book_one, booking_status, deliver, mails_about, payment_field,
    pipeline, wait_for_booking, wait_until_settled,
};

/// A fake Stripe, an SMTP server counting what arrives, and a pipeline paying and mailing
/// through them (with `extra` settings).
async fn paying(extra: &[(&str, &str)]) -> (FakeStripe, FakeSmtp, Pipeline) {
    let fake = FakeStripe::start().await;
    let smtp = FakeSmtp::start(Duration::ZERO).await;
    let p = pipeline(&fake, &smtp, extra).await;
    (fake, smtp, p)
}

async fn seats_left(p: &Pipeline, booking: Uuid) -> i64 {
    p.scalar(&format!(
        "SELECT l.seats_left::bigint FROM listings l JOIN bookings b ON b.listing_id = l.id
          WHERE b.id = '{booking}'"
    ))
    .await
}

async fn refunds_recorded(p: &Pipeline, booking: Uuid) -> i64 {
    p.scalar(&format!(
        "SELECT COALESCE(sum(r.amount_cents), 0)::bigint FROM payment_refunds r
           JOIN payments p ON p.id = r.payment_id WHERE p.booking_id = '{booking}'"
    ))
    .await
}

async fn today_refunds_cents(p: &Pipeline) -> i64 {
    let tz = p.settings.report_tz;
    let today = Utc::now().date_naive();
    let (from, until) = reports::day_bounds(today, tz).unwrap();
    let report = reports::compute(&p.db, today, tz, from, until)
        .await
        .unwrap();
    report.totals.iter().map(|t| t.refunds_cents).sum()
}

#[tokio::test]
async fn a_lost_capture_answer_a_cancel_during_an_outage_and_a_failing_refund_end_in_one_refund() {
    let (fake, smtp, p) = paying(&[]).await;
    let (id, pi) = authorized_booking(&p, &fake).await;
    // The capture is made at Stripe, but its answer never arrives: recorded as authorised.
    fake.lose_answer_after_processing(Kind::Capture, 1);
    assert!(p.providers.payments.capture(&pi, "lost").await.is_err());
    assert_eq!(payment_field(&p, id, "status").await.unwrap(), "authorized");
    // The customer cancels while Stripe is degraded; the refund then fails once.
    bookings::cancel(&p.db, id, CancelledBy::Admin, None)
        .await
        .unwrap();
    fake.fail_next(Kind::Cancel, 2, 503);
    fake.fail_next(Kind::Refund, 1, 500);

    let _worker = p.spawn_worker(&[]);
    wait_for_booking(&p, id, "refunded").await;
    wait_until_settled(&p).await;

    assert_eq!(
        fake.refunds_of(&pi).len(),
        1,
        "exactly one refund at Stripe"
    );
    assert_eq!(fake.executions(Kind::Refund), 1);
    assert_eq!(fake.captures_of(&pi).len(), 1);
    assert_eq!(payment_field(&p, id, "status").await.unwrap(), "refunded");
    assert_eq!(refunds_recorded(&p, id).await, 4200);
    assert_eq!(mails_about(&smtp, "refund"), 1);
    assert_eq!(
        p.scalar(&format!(
            "SELECT count(*) FROM outbox WHERE status = 'dead' AND payload->>'booking_id' = '{id}'"
        ))
        .await,
        0
    );
}

#[tokio::test]
async fn a_full_refund_in_the_stripe_dashboard_refunds_the_booking_and_returns_its_seats() {
    let (fake, smtp, p) = paying(&[]).await;
    let _worker = p.spawn_worker(&[]);
    let (id, pi) = authorized_booking(&p, &fake).await;
    wait_for_booking(&p, id, "paid").await;
    assert_eq!(seats_left(&p, id).await, 4);

    p.providers
        .payments
        .refund(&pi, 4200, "dashboard")
        .await
        .unwrap();
    assert!(deliver(&p, &fake, "charge.refunded", fake.charge_of(&pi).unwrap()).await);

    assert_eq!(booking_status(&p, id).await, "refunded");
    assert_eq!(payment_field(&p, id, "status").await.unwrap(), "refunded");
    assert_eq!(seats_left(&p, id).await, 5);
    assert_eq!(refunds_recorded(&p, id).await, 4200);
    assert_eq!(today_refunds_cents(&p).await, 4200);
    wait_until_settled(&p).await;
    assert_eq!(mails_about(&smtp, "refund"), 1);
    assert_eq!(fake.executions(Kind::Refund), 1, "only the dashboard's");
}

#[tokio::test]
async fn a_partial_refund_in_the_stripe_dashboard_is_recorded_and_reported_on_its_day() {
    let (fake, _smtp, p) = paying(&[]).await;
    let _worker = p.spawn_worker(&[]);
    let (id, pi) = authorized_booking(&p, &fake).await;
    wait_for_booking(&p, id, "paid").await;

    p.providers
        .payments
        .refund(&pi, 1000, "dashboard-part")
        .await
        .unwrap();
    let charge = fake.charge_of(&pi).unwrap();
    assert!(deliver(&p, &fake, "charge.refunded", charge.clone()).await);
    // Stripe may send it twice; the same refund is one row.
    assert!(deliver(&p, &fake, "charge.refunded", charge).await);

    assert_eq!(booking_status(&p, id).await, "paid");
    assert_eq!(payment_field(&p, id, "status").await.unwrap(), "captured");
    assert_eq!(
        payment_field(&p, id, "amount_refunded_cents")
            .await
            .unwrap(),
        "1000"
    );
    assert_eq!(seats_left(&p, id).await, 4, "the booking keeps its seat");
    assert_eq!(refunds_recorded(&p, id).await, 1000);
    assert_eq!(today_refunds_cents(&p).await, 1000);

    // Cancelled afterwards by an admin: only the rest is refunded.
    bookings::cancel(&p.db, id, CancelledBy::Admin, None)
        .await
        .unwrap();
    wait_for_booking(&p, id, "refunded").await;
    let ours: Vec<_> = fake
        .refunds_of(&pi)
        .into_iter()
        .filter(|r| r["amount"] == 3200)
        .collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(fake.refunds_of(&pi).len(), 2);
    assert_eq!(refunds_recorded(&p, id).await, 4200);
    assert_eq!(today_refunds_cents(&p).await, 4200);
}

#[tokio::test]
async fn an_authorization_just_before_the_hold_ends_with_a_late_webhook_is_paid_not_expired() {
    let (fake, smtp, p) = paying(&[("BOOKING_HOLD_SECONDS", "2")]).await;
    let (id, pi) = book_one(&p, &fake).await;
    let pi = pi.unwrap();
    // The customer pays as the hold ends; Stripe's webhook is still on its way.
    let authorized = fake.authorize(&pi);

    let _worker = p.spawn_worker(&[]);
    wait_for_booking(&p, id, "paid").await;
    // The webhook, eight seconds late, changes nothing.
    assert!(
        deliver(
            &p,
            &fake,
            "payment_intent.amount_capturable_updated",
            authorized
        )
        .await
    );
    wait_until_settled(&p).await;

    assert_eq!(booking_status(&p, id).await, "paid");
    assert_eq!(fake.executions(Kind::Capture), 1);
    assert_eq!(
        fake.calls(Kind::Cancel),
        0,
        "the authorisation was never voided"
    );
    assert_eq!(seats_left(&p, id).await, 4);
    assert_eq!(mails_about(&smtp, "receipt"), 1);
    assert_eq!(
        p.scalar(&format!(
            "SELECT count(*) FROM notifications WHERE booking_id = '{id}' AND kind = 'hold_expired'"
        ))
        .await,
        0
    );
}

#[tokio::test]
async fn a_signed_event_this_version_cannot_read_becomes_a_dead_job_and_applies_once_readable() {
    let (fake, _smtp, p) = paying(&[]).await;
    let (id, pi) = book_one(&p, &fake).await;
    let pi = pi.unwrap();
    let authorized = fake.authorize(&pi);
    // A newer API version: `amount_received` became an object this version cannot read.
    let mut newer = authorized.clone();
    newer["amount_received"] = serde_json::json!({"value": 0, "currency": "eur"});
    let payload = event_payload(
        "payment_intent.amount_capturable_updated",
        newer,
        Utc::now().timestamp(),
    );
    let event_id = serde_json::from_str::<serde_json::Value>(&payload).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        payment_events::receive(
            &p.db,
            &event_id,
            "payment_intent.amount_capturable_updated",
            &payload
        )
        .await
        .unwrap(),
        Received::Stored
    );

    let _worker = p.spawn_worker(&[]);
    let job = format!("apply_payment_event:{event_id}");
    wait_until("the event's job is dead", DEADLINE, || async {
        p.scalar(&format!(
            "SELECT count(*) FROM outbox WHERE task_id = '{job}' AND status = 'dead'"
        ))
        .await
            == 1
    })
    .await;
    let error = p
        .text(&format!(
            "SELECT last_error FROM outbox WHERE task_id = '{job}'"
        ))
        .await
        .unwrap();
    assert!(error.contains("cannot read"), "{error}");
    assert_eq!(booking_status(&p, id).await, "pending_payment");

    // The upgrade: this stands in for a version that reads the newer shape (the stored
    // event gets the shape this version reads, under the same id). An operator retries.
    let readable = fake.payment_intent(&pi).unwrap();
    let fixed = payload.replace(
        &serde_json::json!({"value": 0, "currency": "eur"}).to_string(),
        &readable["amount_received"].to_string(),
    );
    assert!(parse_event(&fixed).is_ok());
    p.db.execute_raw(sea_orm::Statement::from_sql_and_values(
        sea_orm::DatabaseBackend::Postgres,
        "UPDATE processed_webhook_events SET payload = $2 WHERE event_id = $1",
        [event_id.clone().into(), fixed.into()],
    ))
    .await
    .unwrap();
    let queue = orderly_jobs::Queue::Payments;
    let job_id: Uuid = p
        .text(&format!(
            "SELECT id::text FROM outbox WHERE task_id = '{job}'"
        ))
        .await
        .unwrap()
        .parse()
        .unwrap();
    orderly_admin::jobs::retry(
        &p.db,
        queue,
        job_id,
        orderly_db::audit_log::Actor {
            user_id: p.user(Role::Admin, None).await.id,
            request_id: None,
        },
    )
    .await
    .unwrap();
    wait_for_booking(&p, id, "paid").await;
    assert_eq!(fake.executions(Kind::Capture), 1);
}

#[tokio::test]
async fn a_stripe_call_taking_fifteen_seconds_holds_up_no_cancel_or_webhook_and_loses_no_lease() {
    let (fake, _smtp, p) = paying(&[]).await;
    let (slow, slow_pi) = authorized_booking(&p, &fake).await;
    let (other, other_pi) = book_one(&p, &fake).await;
    let other_pi = other_pi.unwrap();
    fake.delay_next(Kind::Capture, 1, Duration::from_secs(15));
    let _worker = p.spawn_worker(&[]);
    wait_until("the slow capture reached Stripe", DEADLINE, || async {
        fake.calls(Kind::Capture) == 1
    })
    .await;

    // While Stripe thinks: another booking's webhook and the slow booking's own cancel.
    let started = Instant::now();
    let authorized = fake.authorize(&other_pi);
    assert!(
        deliver(
            &p,
            &fake,
            "payment_intent.amount_capturable_updated",
            authorized
        )
        .await
    );
    bookings::cancel(&p.db, slow, CancelledBy::Admin, None)
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "held up for {took:?}");
    let status = booking_status(&p, other).await;
    assert!(status == "confirmed" || status == "paid", "{status}");

    // The capture's answer arrives after the cancel: the money is refunded, once.
    wait_for_booking(&p, slow, "refunded").await;
    wait_for_booking(&p, other, "paid").await;
    wait_until_settled(&p).await;
    assert_eq!(fake.captures_of(&slow_pi).len(), 1);
    assert_eq!(fake.refunds_of(&slow_pi).len(), 1);
    assert_eq!(
        p.scalar("SELECT count(*) FROM outbox_attempts WHERE outcome = 'lost'")
            .await,
        0,
        "no lease was lost while Stripe was slow"
    );
}

#[tokio::test]
async fn the_reconciliation_repairs_each_seeded_mismatch_once_and_a_clean_database_not_at_all() {
    let (fake, _smtp, p) = paying(&[]).await;
    let gateway = p.providers.payments.clone();
    let now_only = Options {
        settle: Duration::ZERO,
        ..Options::default()
    };
    // A clean database: nothing to repair.
    let clean = reconcile::reconcile_with(&p.db, gateway.as_ref(), now_only)
        .await
        .unwrap();
    assert_eq!(clean.repaired, 0);

    // 1. Captured at Stripe, cancelled here, no refund job alive.
    let (captured_cancelled, pi1) = authorized_booking(&p, &fake).await;
    gateway.capture(&pi1, "oob-1").await.unwrap();
    bookings::cancel(&p.db, captured_cancelled, CancelledBy::Admin, None)
        .await
        .unwrap();
    // 2. Authorised at Stripe, expired here (the webhook was lost), seats still free.
    let (expired_paid, pi2) = book_one(&p, &fake).await;
    let pi2 = pi2.unwrap();
    fake.authorize(&pi2);
    assert!(bookings::expire(&p.db, expired_paid, None).await.unwrap());
    // 3. Refunded in Stripe's dashboard, no event: still paid here.
    let (dashboard, pi3) = authorized_booking(&p, &fake).await;
    gateway.capture(&pi3, "oob-3").await.unwrap();
    payments_paid(&p, dashboard).await;
    gateway.refund(&pi3, 4200, "dashboard-3").await.unwrap();
    // 4. Confirmed, but its capture job died.
    let (no_capture, _pi4) = authorized_booking(&p, &fake).await;
    p.db.execute_unprepared(&format!(
        "UPDATE outbox SET status = 'dead' WHERE task_id = 'capture_payment:{no_capture}'"
    ))
    .await
    .unwrap();
    // Every job but the seeded state's own is out of the way: no worker runs yet.
    p.db.execute_unprepared(&format!(
        "UPDATE outbox SET status = 'dead' WHERE job_type IN ('cancel_payment', 'refund_payment', 'capture_payment')
            AND task_id NOT LIKE '%{no_capture}%'"
    ))
    .await
    .unwrap();

    let first = reconcile::reconcile_with(&p.db, gateway.as_ref(), now_only)
        .await
        .unwrap();
    assert_eq!(first.repaired, 4, "{first:?}");
    let repairs = |booking: Uuid| {
        let p = &p;
        async move {
            p.text(&format!(
                "SELECT string_agg(mismatch, ',') FROM payment_repairs WHERE booking_id = '{booking}'"
            ))
            .await
            .unwrap_or_default()
        }
    };
    assert_eq!(repairs(captured_cancelled).await, "captured_but_ended");
    assert_eq!(repairs(expired_paid).await, "authorized_but_expired");
    assert_eq!(repairs(dashboard).await, "refunded_at_provider");
    assert_eq!(repairs(no_capture).await, "job_missing");
    assert_eq!(booking_status(&p, expired_paid).await, "confirmed");
    assert_eq!(booking_status(&p, dashboard).await, "refunded");

    // The jobs it queued finish the work; a second run finds nothing left.
    let _worker = p.spawn_worker(&[]);
    wait_for_booking(&p, captured_cancelled, "refunded").await;
    wait_for_booking(&p, expired_paid, "paid").await;
    wait_for_booking(&p, no_capture, "paid").await;
    wait_until_settled(&p).await;
    assert_eq!(fake.refunds_of(&pi1).len(), 1);
    assert_eq!(fake.captures_of(&pi2).len(), 1);
    let second = reconcile::reconcile_with(&p.db, gateway.as_ref(), now_only)
        .await
        .unwrap();
    assert_eq!(second.repaired, 0, "{second:?}");
    assert_eq!(p.scalar("SELECT count(*) FROM payment_repairs").await, 4);
}

/// Marks a booking paid as its capture job would have, for a seed whose capture was made
/// out of band.
async fn payments_paid(p: &Pipeline, booking: Uuid) {
    let intent = p
        .providers
        .payments
        .retrieve(
            &payment_field(p, booking, "provider_payment_id")
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    orderly_domain::payments::observed(&p.db, booking, &intent, None)
        .await
        .unwrap();
    assert_eq!(booking_status(p, booking).await, "paid");
}

#[tokio::test]
async fn a_customer_cannot_cancel_a_paid_booking_inside_the_cutoff_but_an_admin_can() {
    let (fake, _smtp, p) = paying(&[]).await;
    let (id, _pi) = authorized_booking(&p, &fake).await;
    let starts_in_hours = |h: i64| Utc::now() + chrono::Duration::hours(h);
    let listing = p
        .text(&format!(
            "SELECT listing_id::text FROM bookings WHERE id = '{id}'"
        ))
        .await
        .unwrap();
    p.db.execute_unprepared(&format!(
        "UPDATE listings SET starts_at = '{}' WHERE id = '{listing}'",
        starts_in_hours(23).to_rfc3339()
    ))
    .await
    .unwrap();
    let day = CancelledBy::Customer {
        cutoff: Duration::from_secs(24 * 3600),
    };
    let refused = bookings::cancel(&p.db, id, day, None).await.unwrap_err();
    assert!(matches!(
        refused,
        bookings::BookingError::CancellationClosed
    ));
    assert_eq!(booking_status(&p, id).await, "confirmed");
    // Outside the cutoff a customer may cancel; inside it, an admin always may.
    let hour = CancelledBy::Customer {
        cutoff: Duration::from_secs(3600),
    };
    bookings::cancel(&p.db, id, hour, None).await.unwrap();
    assert_eq!(booking_status(&p, id).await, "cancelled");

    let (unpaid, _) = book_one(&p, &fake).await;
    p.db.execute_unprepared(&format!(
        "UPDATE listings l SET starts_at = '{}' FROM bookings b WHERE b.id = '{unpaid}' AND l.id = b.listing_id",
        starts_in_hours(1).to_rfc3339()
    ))
    .await
    .unwrap();
    bookings::cancel(&p.db, unpaid, day, None).await.unwrap();
    assert_eq!(booking_status(&p, unpaid).await, "cancelled");
    let (admin_cancelled, _) = authorized_booking(&p, &fake).await;
    p.db.execute_unprepared(&format!(
        "UPDATE listings l SET starts_at = '{}' FROM bookings b WHERE b.id = '{admin_cancelled}' AND l.id = b.listing_id",
        starts_in_hours(1).to_rfc3339()
    ))
    .await
    .unwrap();
    bookings::cancel(&p.db, admin_cancelled, CancelledBy::Admin, None)
        .await
        .unwrap();
    assert_eq!(booking_status(&p, admin_cancelled).await, "cancelled");
}

#[tokio::test]
async fn a_refund_retried_after_a_partial_dashboard_refund_uses_a_key_of_its_own_and_refunds_the_rest()
 {
    let (fake, _smtp, p) = paying(&[]).await;
    let gateway = p.providers.payments.clone();
    let (id, pi) = authorized_booking(&p, &fake).await;
    gateway.capture(&pi, "oob").await.unwrap();
    payments_paid(&p, id).await;
    bookings::cancel(&p.db, id, CancelledBy::Admin, None)
        .await
        .unwrap();
    // The refund_payment job's first call gets a stored 500 (its outcome unknown)...
    fake.fail_next(Kind::Refund, 1, 500);
    let first = payments::refund(&p.db, gateway.as_ref(), id, None).await;
    assert!(first.is_err());
    // ...then someone refunds part of it in Stripe's dashboard, and the event arrives.
    gateway.refund(&pi, 1000, "dashboard").await.unwrap();
    assert!(deliver(&p, &fake, "charge.refunded", fake.charge_of(&pi).unwrap()).await);
    assert_eq!(booking_status(&p, id).await, "cancelled");

    // The retry refunds the rest under a key that names it, not the spent one.
    payments::refund(&p.db, gateway.as_ref(), id, None)
        .await
        .unwrap();
    assert_eq!(booking_status(&p, id).await, "refunded");
    let amounts: Vec<i64> = fake
        .refunds_of(&pi)
        .iter()
        .map(|r| r["amount"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts, [1000, 3200]);
    assert_eq!(refunds_recorded(&p, id).await, 4200);
}

#[tokio::test]
async fn a_booking_confirmed_again_by_the_reconciliation_then_cancelled_gets_its_authorisation_cancelled()
 {
    let (fake, _smtp, p) = paying(&[]).await;
    let gateway = p.providers.payments.clone();
    let (id, pi) = book_one(&p, &fake).await;
    let pi = pi.unwrap();
    fake.authorize(&pi);
    assert!(bookings::expire(&p.db, id, None).await.unwrap());
    // The expiry's cancellation ended without reaching Stripe (say, it died).
    p.db.execute_unprepared(&format!(
        "UPDATE outbox SET status = 'dead' WHERE task_id = 'cancel_payment:{id}:0'"
    ))
    .await
    .unwrap();
    let now_only = Options {
        settle: Duration::ZERO,
        ..Options::default()
    };
    let done = reconcile::reconcile_with(&p.db, gateway.as_ref(), now_only)
        .await
        .unwrap();
    assert_eq!(done.repaired, 1);
    assert_eq!(booking_status(&p, id).await, "confirmed");

    // Cancelled before its capture ran: a new round of the cancellation is queued.
    p.db.execute_unprepared(&format!(
        "UPDATE outbox SET status = 'dead' WHERE task_id = 'capture_payment:{id}'"
    ))
    .await
    .unwrap();
    bookings::cancel(&p.db, id, CancelledBy::Admin, None)
        .await
        .unwrap();
    let _worker = p.spawn_worker(&[]);
    wait_until(
        "the authorisation is cancelled at Stripe",
        DEADLINE,
        || async { fake.payment_intent(&pi).unwrap()["status"] == "canceled" },
    )
    .await;
    assert_eq!(fake.executions(Kind::Capture), 0);
    assert_eq!(seats_left(&p, id).await, 5);
}
