//! Stripe payments through the worker, against the fake Stripe server: capture, create,
//! cancel and refund each happen once at Stripe, whatever it answers (a stored 500, an
//! answer lost after the work was done), and the booking ends where it should. The
//! authorisation arrives as a signed event through the webhook's own code path.

use std::time::Duration;

use orderly_core::config::PaymentSettings;
use orderly_db::users::Role;
use orderly_domain::bookings;
use orderly_domain::bookings::CancelledBy;
use orderly_domain::payment_events::{self, Applied, Received};
use orderly_providers::payments::IntentState;
use orderly_providers::stripe::{parse_event, verify_signature};
use orderly_testing::stripe::{FakeStripe, Kind, Outcome, RecordedRequest};
use orderly_testing::wait_until;
use serde_json::Value;
use uuid::Uuid;

use crate::fakes::FakeSmtp;
use crate::harness::Pipeline;

pub(crate) const WHSEC: &str = "whsec_orderly_pipeline_tests";

/// How long any one state may take to arrive (the `create_payment` safety net runs 10 s
/// after the booking, retries are fast here).
pub(crate) const DEADLINE: Duration = Duration::from_secs(40);

/// A pipeline paying through `fake` and mailing through `smtp`; retries start 200 ms
/// after a failure.
pub(crate) async fn pipeline(
    fake: &FakeStripe,
    smtp: &FakeSmtp,
    extra: &[(&str, &str)],
) -> Pipeline {
    let env = fake.env(WHSEC);
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars.push(("SMTP_URL", smtp.url.as_str()));
    vars.push(("JOB_RETRY_BASE_DELAY_MS", "200"));
    vars.extend_from_slice(extra);
    Pipeline::new(&vars).await
}

/// Signs `object` as an event of `event_type`, stores it as the webhook route does and
/// applies it as its job does. A worker may run that job first: then this finds it applied
/// (and committed). Returns `false` for an event about no payment of ours.
pub(crate) async fn deliver(
    p: &Pipeline,
    fake: &FakeStripe,
    event_type: &str,
    object: Value,
) -> bool {
    let PaymentSettings::Stripe { webhook_secret, .. } = &p.settings.payments else {
        panic!("the pipeline is not configured for Stripe");
    };
    let (payload, signature) = fake.webhooks(WHSEC).event(event_type, object);
    let event = verify_signature(payload.as_bytes(), Some(&signature), webhook_secret).unwrap();
    assert_eq!(
        payment_events::receive(&p.db, &event.id, &event.event_type, &payload)
            .await
            .unwrap(),
        Received::Stored
    );
    let applied = payment_events::apply_stored(&p.db, &event.id, parse_event)
        .await
        .unwrap();
    applied != Applied::UnknownPayment
}

/// A customer's booking of one seat: `(booking id, its PaymentIntent id if one was made)`.
pub(crate) async fn book_one(p: &Pipeline, fake: &FakeStripe) -> (Uuid, Option<String>) {
    let listing = p.listing(5).await;
    let customer = p.user(Role::Customer, None).await;
    let id = p.book(&customer, &listing, 1).await;
    let intents = fake.intents_for_booking(&id.to_string());
    assert!(intents.len() <= 1, "PaymentIntents: {intents:?}");
    let pi = intents
        .first()
        .map(|pi| pi["id"].as_str().unwrap().to_owned());
    (id, pi)
}

/// A booking whose customer paid and whose authorisation event was applied: confirmed,
/// its capture queued. Returns `(booking id, PaymentIntent id)`.
pub(crate) async fn authorized_booking(p: &Pipeline, fake: &FakeStripe) -> (Uuid, String) {
    let (id, pi) = book_one(p, fake).await;
    let pi = pi.expect("a PaymentIntent made with the booking");
    let paid = fake.authorize(&pi);
    assert!(deliver(p, fake, "payment_intent.amount_capturable_updated", paid).await);
    assert_eq!(booking_status(p, id).await, "confirmed");
    (id, pi)
}

pub(crate) async fn booking_status(p: &Pipeline, id: Uuid) -> String {
    p.text(&format!("SELECT status FROM bookings WHERE id = '{id}'"))
        .await
        .unwrap()
}

pub(crate) async fn payment_field(p: &Pipeline, id: Uuid, column: &str) -> Option<String> {
    p.text(&format!(
        "SELECT {column}::text FROM payments WHERE booking_id = '{id}'"
    ))
    .await
}

pub(crate) async fn wait_for_booking(p: &Pipeline, id: Uuid, status: &str) {
    wait_until(&format!("booking {id} is {status}"), DEADLINE, || async {
        booking_status(p, id).await == status
    })
    .await;
}

pub(crate) async fn wait_for_payment(p: &Pipeline, id: Uuid, status: &str) {
    wait_until(
        &format!("the payment of {id} is {status}"),
        DEADLINE,
        || async { payment_field(p, id, "status").await.as_deref() == Some(status) },
    )
    .await;
}

/// Waits until every job but the far-off expiry and the `create_payment` safety net ended,
/// so that a repeated effect would have happened by now.
pub(crate) async fn wait_until_settled(p: &Pipeline) {
    wait_until("the payment and message jobs ended", DEADLINE, || async {
        p.scalar(
            "SELECT count(*) FROM outbox WHERE status NOT IN ('done', 'dead')
                AND job_type NOT IN ('expire_booking', 'create_payment')",
        )
        .await
            == 0
    })
    .await;
}

/// E-mails accepted by the SMTP server whose subject mentions `word` (any case).
pub(crate) fn mails_about(smtp: &FakeSmtp, word: &str) -> usize {
    smtp.mails()
        .iter()
        .filter(|m| m.subject.to_lowercase().contains(word))
        .count()
}

/// The requests of `kind` the fake saw about PaymentIntent `pi` (or, for creations and
/// searches, every one).
pub(crate) fn requests_of(fake: &FakeStripe, kind: Kind, pi: Option<&str>) -> Vec<RecordedRequest> {
    fake.requests()
        .into_iter()
        .filter(|r| r.kind == kind && pi.is_none_or(|pi| r.path.contains(pi)))
        .collect()
}

pub(crate) fn keys(requests: &[RecordedRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|r| r.idempotency_key.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn an_authorized_booking_is_captured_once_by_the_worker_and_gets_one_receipt() {
    let fake = FakeStripe::start().await;
    let smtp = FakeSmtp::start(Duration::ZERO).await;
    let p = pipeline(&fake, &smtp, &[]).await;
    let (id, pi) = authorized_booking(&p, &fake).await;

    let _worker = p.spawn_worker(&[]);
    wait_for_booking(&p, id, "paid").await;
    wait_until_settled(&p).await;

    assert_eq!(fake.captures_of(&pi).len(), 1);
    assert_eq!(fake.executions(Kind::Capture), 1);
    assert_eq!(fake.calls(Kind::Capture), 1);
    assert_eq!(
        fake.captures_of(&pi)[0].idempotency_key.as_deref(),
        Some(format!("orderly-booking-{id}-capture").as_str())
    );
    assert_eq!(fake.payment_intent(&pi).unwrap()["status"], "succeeded");
    assert_eq!(payment_field(&p, id, "status").await.unwrap(), "captured");
    assert_eq!(
        payment_field(&p, id, "amount_captured_cents")
            .await
            .unwrap(),
        "4200"
    );
    assert_eq!(mails_about(&smtp, "receipt"), 1);
    assert_eq!(smtp.duplicates(), 0);

    // Stripe's own report of the capture, arriving after it was recorded, changes nothing.
    let notifications = p.scalar("SELECT count(*) FROM notifications").await;
    let succeeded = fake.payment_intent(&pi).unwrap();
    assert!(deliver(&p, &fake, "payment_intent.succeeded", succeeded).await);
    assert_eq!(
        p.scalar("SELECT count(*) FROM notifications").await,
        notifications
    );
    assert_eq!(booking_status(&p, id).await, "paid");
}

#[tokio::test]
async fn a_capture_answered_with_a_stored_500_is_retried_under_a_new_key_after_reading_the_intent()
{
    let fake = FakeStripe::start().await;
    let smtp = FakeSmtp::start(Duration::ZERO).await;
    let p = pipeline(&fake, &smtp, &[]).await;
    let (id, pi) = authorized_booking(&p, &fake).await;
    fake.fail_next(Kind::Capture, 1, 500);

    let _worker = p.spawn_worker(&[]);
    wait_for_booking(&p, id, "paid").await;
    wait_until_settled(&p).await;

    assert_eq!(fake.captures_of(&pi).len(), 1);
    assert_eq!(fake.executions(Kind::Capture), 1);
    let key = format!("orderly-booking-{id}-capture");
    let captures = requests_of(&fake, Kind::Capture, Some(&pi));
    assert_eq!(keys(&captures), [key.clone(), format!("{key}-2")]);
    assert_eq!(captures[0].outcome, Outcome::Injected);
    assert_eq!(captures[1].outcome, Outcome::Executed);
    // Between the two, the PaymentIntent was read and found still authorised.
    let log = fake.requests();
    let first = log.iter().position(|r| r.kind == Kind::Capture).unwrap();
    let second = log.iter().rposition(|r| r.kind == Kind::Capture).unwrap();
    assert!(
        log[first..second]
            .iter()
            .any(|r| r.kind == Kind::Retrieve && r.path.contains(&pi)),
        "no read of the PaymentIntent between the captures: {log:?}"
    );
    assert_eq!(
        payment_field(&p, id, "provider_attempts").await.unwrap(),
        "0"
    );
    assert_eq!(mails_about(&smtp, "receipt"), 1);
}

#[tokio::test]
async fn a_capture_whose_answer_was_lost_is_recorded_from_the_intent_without_capturing_again() {
    let fake = FakeStripe::start().await;
    let smtp = FakeSmtp::start(Duration::ZERO).await;
    let p = pipeline(&fake, &smtp, &[]).await;
    let (id, pi) = authorized_booking(&p, &fake).await;
    fake.lose_answer_after_processing(Kind::Capture, 1);

    let _worker = p.spawn_worker(&[]);
    wait_for_booking(&p, id, "paid").await;
    wait_until_settled(&p).await;

    assert_eq!(fake.captures_of(&pi).len(), 1);
    assert_eq!(fake.executions(Kind::Capture), 1);
    let captures = requests_of(&fake, Kind::Capture, Some(&pi));
    assert_eq!(
        captures.len(),
        1,
        "the retry reads the intent instead: {captures:?}"
    );
    assert!(captures[0].answer_lost);
    assert!(
        !requests_of(&fake, Kind::Retrieve, Some(&pi)).is_empty(),
        "the retry read the PaymentIntent"
    );
    assert_eq!(payment_field(&p, id, "status").await.unwrap(), "captured");
    assert_eq!(mails_about(&smtp, "receipt"), 1);
    assert_eq!(smtp.duplicates(), 0);
}

#[tokio::test]
async fn a_payment_stripe_failed_to_create_while_booking_is_created_once_by_the_safety_net() {
    let fake = FakeStripe::start().await;
    let smtp = FakeSmtp::start(Duration::ZERO).await;
    let p = pipeline(&fake, &smtp, &[]).await;
    fake.fail_next(Kind::Create, 1, 500);
    let (id, pi) = book_one(&p, &fake).await;
    assert_eq!(pi, None);
    assert_eq!(payment_field(&p, id, "status").await.unwrap(), "creating");

    let _worker = p.spawn_worker(&[]);
    wait_for_payment(&p, id, "requires_payment").await;

    let intents = fake.intents_for_booking(&id.to_string());
    assert_eq!(intents.len(), 1);
    let pi = &intents[0];
    assert_eq!(
        payment_field(&p, id, "provider_payment_id")
            .await
            .as_deref(),
        pi["id"].as_str()
    );
    assert_eq!(
        payment_field(&p, id, "client_secret").await.as_deref(),
        pi["client_secret"].as_str()
    );
    assert_eq!(pi["amount"], 4200);
    assert_eq!(pi["capture_method"], "manual");
    let key = format!("orderly-booking-{id}-create");
    let creates = requests_of(&fake, Kind::Create, None);
    assert_eq!(keys(&creates), [key.clone(), format!("{key}-2")]);
    assert_eq!(fake.executions(Kind::Create), 1);
    assert!(
        !requests_of(&fake, Kind::Search, None).is_empty(),
        "looked for an earlier PaymentIntent before using a new key"
    );
    assert_eq!(booking_status(&p, id).await, "pending_payment");
}

#[tokio::test]
async fn a_payment_intent_whose_creation_answer_was_lost_is_found_and_adopted_not_made_twice() {
    let fake = FakeStripe::start().await;
    let smtp = FakeSmtp::start(Duration::ZERO).await;
    let p = pipeline(&fake, &smtp, &[]).await;
    fake.lose_answer_after_processing(Kind::Create, 1);
    let (id, made) = book_one(&p, &fake).await;
    let made = made.expect("Stripe made the PaymentIntent though the answer was lost");
    assert_eq!(payment_field(&p, id, "status").await.unwrap(), "creating");

    let _worker = p.spawn_worker(&[]);
    wait_for_payment(&p, id, "requires_payment").await;

    assert_eq!(fake.intents_for_booking(&id.to_string()).len(), 1);
    assert_eq!(fake.executions(Kind::Create), 1);
    assert_eq!(
        fake.calls(Kind::Create),
        1,
        "found by search, not created again"
    );
    assert_eq!(
        payment_field(&p, id, "provider_payment_id")
            .await
            .as_deref(),
        Some(made.as_str())
    );
    assert_eq!(
        payment_field(&p, id, "client_secret").await.as_deref(),
        fake.payment_intent(&made).unwrap()["client_secret"].as_str()
    );
    assert_eq!(
        payment_field(&p, id, "provider_attempts").await.unwrap(),
        "0"
    );
}

#[tokio::test]
async fn an_unpaid_booking_expires_and_its_payment_intent_is_cancelled_once() {
    let fake = FakeStripe::start().await;
    let smtp = FakeSmtp::start(Duration::ZERO).await;
    let p = pipeline(&fake, &smtp, &[("BOOKING_HOLD_SECONDS", "1")]).await;
    let (id, pi) = book_one(&p, &fake).await;
    let pi = pi.unwrap();

    let _worker = p.spawn_worker(&[]);
    wait_for_booking(&p, id, "expired").await;
    wait_for_payment(&p, id, "cancelled").await;
    wait_until_settled(&p).await;

    assert_eq!(fake.payment_intent(&pi).unwrap()["status"], "canceled");
    assert_eq!(fake.executions(Kind::Cancel), 1);
    assert_eq!(fake.calls(Kind::Cancel), 1);
    assert_eq!(
        keys(&requests_of(&fake, Kind::Cancel, Some(&pi))),
        [format!("orderly-booking-{id}-cancel")]
    );
    assert_eq!(fake.executions(Kind::Capture), 0);
    assert_eq!(
        p.scalar(&format!(
            "SELECT count(*) FROM notifications WHERE booking_id = '{id}' AND kind = 'hold_expired'"
        ))
        .await,
        1
    );
}

/// A booking captured by the worker (`paid`), then cancelled by its customer.
async fn paid_then_cancelled(p: &Pipeline, fake: &FakeStripe) -> (Uuid, String) {
    let (id, pi) = authorized_booking(p, fake).await;
    wait_for_booking(p, id, "paid").await;
    bookings::cancel(&p.db, id, CancelledBy::Admin, None)
        .await
        .unwrap();
    (id, pi)
}

#[tokio::test]
async fn a_paid_booking_cancelled_is_refunded_once() {
    let fake = FakeStripe::start().await;
    let smtp = FakeSmtp::start(Duration::ZERO).await;
    let p = pipeline(&fake, &smtp, &[]).await;
    let _worker = p.spawn_worker(&[]);
    let (id, pi) = paid_then_cancelled(&p, &fake).await;

    wait_for_booking(&p, id, "refunded").await;
    wait_until_settled(&p).await;

    let refunds = fake.refunds_of(&pi);
    assert_eq!(refunds.len(), 1);
    assert_eq!(refunds[0]["amount"], 4200);
    assert_eq!(fake.executions(Kind::Refund), 1);
    assert_eq!(fake.calls(Kind::Refund), 1);
    assert_eq!(payment_field(&p, id, "status").await.unwrap(), "refunded");
    assert_eq!(
        payment_field(&p, id, "amount_refunded_cents")
            .await
            .unwrap(),
        "4200"
    );
    assert_eq!(
        fake.executions(Kind::Cancel),
        0,
        "a capture is refunded, not cancelled"
    );

    // Stripe's report of the refund, arriving after it was recorded, changes nothing.
    let notifications = p.scalar("SELECT count(*) FROM notifications").await;
    let charge = fake.charge_of(&pi).unwrap();
    assert!(deliver(&p, &fake, "charge.refunded", charge).await);
    assert_eq!(
        p.scalar("SELECT count(*) FROM notifications").await,
        notifications
    );
    assert_eq!(booking_status(&p, id).await, "refunded");
}

#[tokio::test]
async fn a_refund_whose_answer_was_lost_is_recorded_without_refunding_twice() {
    let fake = FakeStripe::start().await;
    let smtp = FakeSmtp::start(Duration::ZERO).await;
    let p = pipeline(&fake, &smtp, &[]).await;
    fake.lose_answer_after_processing(Kind::Refund, 1);
    let _worker = p.spawn_worker(&[]);
    let (id, pi) = paid_then_cancelled(&p, &fake).await;

    wait_for_booking(&p, id, "refunded").await;
    wait_until_settled(&p).await;

    assert_eq!(fake.refunds_of(&pi).len(), 1);
    assert_eq!(fake.executions(Kind::Refund), 1);
    let refunds = requests_of(&fake, Kind::Refund, None);
    assert_eq!(
        refunds.len(),
        1,
        "the retry reads the intent instead: {refunds:?}"
    );
    assert!(refunds[0].answer_lost);
    assert_eq!(payment_field(&p, id, "status").await.unwrap(), "refunded");
    assert_eq!(
        payment_field(&p, id, "provider_attempts").await.unwrap(),
        "0"
    );
}

#[tokio::test]
async fn a_payment_captured_at_stripe_but_not_recorded_here_is_refunded_when_the_booking_is_cancelled()
 {
    let fake = FakeStripe::start().await;
    let smtp = FakeSmtp::start(Duration::ZERO).await;
    let p = pipeline(&fake, &smtp, &[]).await;
    let (id, pi) = authorized_booking(&p, &fake).await;
    // Captured out of band (another process, the dashboard): nothing recorded here.
    let captured = p
        .providers
        .payments
        .capture(&pi, "out-of-band-capture")
        .await
        .unwrap();
    assert_eq!(captured.state, IntentState::Captured);
    assert_eq!(payment_field(&p, id, "status").await.unwrap(), "authorized");
    bookings::cancel(&p.db, id, CancelledBy::Admin, None)
        .await
        .unwrap();

    let _worker = p.spawn_worker(&[]);
    wait_for_booking(&p, id, "refunded").await;
    wait_until_settled(&p).await;

    assert_eq!(
        fake.captures_of(&pi).len(),
        1,
        "only the out-of-band capture"
    );
    assert_eq!(fake.refunds_of(&pi).len(), 1);
    assert_eq!(fake.executions(Kind::Refund), 1);
    assert_eq!(fake.executions(Kind::Cancel), 0);
    assert_eq!(payment_field(&p, id, "status").await.unwrap(), "refunded");
    assert_eq!(
        payment_field(&p, id, "amount_refunded_cents")
            .await
            .unwrap(),
        "4200"
    );
    assert_eq!(mails_about(&smtp, "refund"), 1);
}

#[tokio::test]
async fn an_authorization_arriving_after_the_hold_expired_is_cancelled_at_stripe_not_captured() {
    let fake = FakeStripe::start().await;
    let smtp = FakeSmtp::start(Duration::ZERO).await;
    let p = pipeline(&fake, &smtp, &[]).await;
    let (id, pi) = book_one(&p, &fake).await;
    let pi = pi.unwrap();
    assert!(bookings::expire(&p.db, id, None).await.unwrap());
    // The customer paid before the expiry's cancellation reached Stripe.
    let paid = fake.authorize(&pi);
    assert!(deliver(&p, &fake, "payment_intent.amount_capturable_updated", paid).await);
    assert_eq!(booking_status(&p, id).await, "expired");

    let _worker = p.spawn_worker(&[]);
    wait_for_payment(&p, id, "cancelled").await;
    wait_until_settled(&p).await;

    assert_eq!(fake.payment_intent(&pi).unwrap()["status"], "canceled");
    assert_eq!(fake.executions(Kind::Cancel), 1);
    // The expiry's cancellation and the late authorisation's may both call, under one key.
    for key in keys(&requests_of(&fake, Kind::Cancel, Some(&pi))) {
        assert_eq!(key, format!("orderly-booking-{id}-cancel"));
    }
    assert_eq!(fake.calls(Kind::Capture), 0);
    assert_eq!(booking_status(&p, id).await, "expired");
    assert_eq!(mails_about(&smtp, "receipt"), 0);
}

#[tokio::test]
async fn an_expired_booking_whose_payment_creation_answer_was_lost_still_has_its_intent_cancelled()
{
    let fake = FakeStripe::start().await;
    let smtp = FakeSmtp::start(Duration::ZERO).await;
    let p = pipeline(&fake, &smtp, &[("BOOKING_HOLD_SECONDS", "1")]).await;
    fake.lose_answer_after_processing(Kind::Create, 1);
    let (id, made) = book_one(&p, &fake).await;
    let made = made.expect("Stripe made the PaymentIntent though the answer was lost");

    let _worker = p.spawn_worker(&[]);
    wait_for_booking(&p, id, "expired").await;
    wait_for_payment(&p, id, "cancelled").await;

    assert_eq!(fake.payment_intent(&made).unwrap()["status"], "canceled");
    assert_eq!(fake.executions(Kind::Cancel), 1);
    assert_eq!(fake.intents_for_booking(&id.to_string()).len(), 1);
    assert_eq!(fake.calls(Kind::Create), 1);
}

#[tokio::test]
async fn a_booking_that_expires_before_its_payment_could_be_created_never_gets_one() {
    let fake = FakeStripe::start().await;
    let smtp = FakeSmtp::start(Duration::ZERO).await;
    let p = pipeline(&fake, &smtp, &[("BOOKING_HOLD_SECONDS", "1")]).await;
    fake.fail_next(Kind::Create, 1, 500);
    let (id, made) = book_one(&p, &fake).await;
    assert_eq!(made, None);

    let _worker = p.spawn_worker(&[]);
    wait_for_booking(&p, id, "expired").await;
    wait_for_payment(&p, id, "cancelled").await;
    // The safety net comes due 10 s after the booking and must find nothing to do.
    wait_until("the create_payment job ended", DEADLINE, || async {
        p.scalar(&format!(
            "SELECT count(*) FROM outbox WHERE task_id = 'create_payment:{id}' AND status IN ('done', 'dead')"
        ))
        .await
            == 1
    })
    .await;

    assert!(fake.intents_for_booking(&id.to_string()).is_empty());
    assert_eq!(fake.calls(Kind::Create), 1);
    assert_eq!(fake.executions(Kind::Cancel), 0);
}

#[tokio::test]
async fn a_capture_finding_the_authorization_gone_expires_the_booking_and_tells_the_customer() {
    let fake = FakeStripe::start().await;
    let smtp = FakeSmtp::start(Duration::ZERO).await;
    let p = pipeline(&fake, &smtp, &[]).await;
    let (id, pi) = authorized_booking(&p, &fake).await;
    // The authorisation lapsed at Stripe before the capture ran.
    p.providers
        .payments
        .cancel(&pi, "lapsed-at-stripe")
        .await
        .unwrap();
    let listing = p
        .text(&format!(
            "SELECT listing_id::text FROM bookings WHERE id = '{id}'"
        ))
        .await
        .unwrap();

    let _worker = p.spawn_worker(&[]);
    wait_for_booking(&p, id, "expired").await;
    wait_until_settled(&p).await;

    assert_eq!(payment_field(&p, id, "status").await.unwrap(), "failed");
    assert_eq!(fake.executions(Kind::Capture), 0);
    assert!(fake.captures_of(&pi).is_empty());
    assert_eq!(
        p.scalar(&format!(
            "SELECT seats_left::bigint FROM listings WHERE id = '{listing}'"
        ))
        .await,
        5
    );
    assert_eq!(
        p.scalar(&format!(
            "SELECT count(*) FROM notifications WHERE booking_id = '{id}' AND kind = 'payment_failed'"
        ))
        .await,
        1
    );
    assert_eq!(mails_about(&smtp, "receipt"), 0);
}
