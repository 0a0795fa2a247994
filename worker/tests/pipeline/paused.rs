//! A worker that stands still (SIGSTOP: a stalled VM, a long pause) past its leases and then
//! goes on: another worker has taken over the messages it had claimed, and the paused one
//! sends none of them again beyond those it had in flight, because a claim proves it still
//! owns its row right before each send. Effects are counted at the protocol peers.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use orderly_domain::delivery::Delivery;
use orderly_providers::ProviderError;
use orderly_providers::mail::{Mailer, OutgoingEmail, message_id};
use orderly_testing::wait_until;
use sea_orm::ConnectionTrait;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::fakes::{FakeSmtp, FakeTwilio};
use crate::harness::Pipeline;

/// Sends through `inner`, holding the first message it is given until released.
struct HoldingFirst {
    inner: Arc<dyn Mailer>,
    held: Mutex<Option<Uuid>>,
    release: Notify,
}

impl HoldingFirst {
    fn new(inner: Arc<dyn Mailer>) -> Self {
        Self {
            inner,
            held: Mutex::default(),
            release: Notify::new(),
        }
    }

    fn held(&self) -> Option<Uuid> {
        *self.held.lock().unwrap()
    }
}

#[async_trait]
impl Mailer for HoldingFirst {
    fn name(&self) -> &'static str {
        "holding-first"
    }

    async fn send(&self, email: &OutgoingEmail) -> Result<String, ProviderError> {
        let first = *self.held.lock().unwrap().get_or_insert(email.id) == email.id;
        if first {
            self.release.notified().await;
        }
        self.inner.send(email).await
    }
}

async fn notification(p: &Pipeline, recipient: &str) -> Uuid {
    let id = Uuid::new_v4();
    p.db.execute_unprepared(&format!(
        "INSERT INTO notifications (id, dedup_key, channel, kind, recipient, status)
         VALUES ('{id}', 'test:{id}', 'email', 'reminder', '{recipient}', 'pending')"
    ))
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn a_claim_taken_over_while_its_message_waited_for_a_slot_sends_nothing() {
    let smtp = FakeSmtp::start(Duration::ZERO).await;
    let p = Pipeline::new(&[("SMTP_URL", smtp.url.as_str())]).await;
    let ids = [
        notification(&p, "ann@example.com").await,
        notification(&p, "bob@example.com").await,
        notification(&p, "cyd@example.com").await,
    ];
    let mailer = HoldingFirst::new(p.providers.mail.clone());
    // One message in flight at a time: the other two wait, claimed, behind the held one.
    let delivery = Delivery::new(p.db.clone(), Duration::from_secs(60)).with_in_flight(Some(1));
    let batch = delivery.send_emails(&mailer, &p.templates, &ids);
    let meanwhile = async {
        wait_until(
            "a message is on its way to the SMTP server",
            Duration::from_secs(10),
            || async { mailer.held().is_some() },
        )
        .await;
        let held = mailer.held().unwrap();
        let waiting: Vec<Uuid> = ids.iter().copied().filter(|id| *id != held).collect();
        let (taken, sent) = (waiting[0], waiting[1]);
        // As if this batch's claims had lapsed while it stood still: another worker claimed
        // one of its rows and is sending it, and claimed and sent the other.
        p.db.execute_unprepared(&format!(
            "UPDATE notifications SET attempts = attempts + 1,
                    sending_until = now() + interval '1 minute'
              WHERE id = '{taken}';
             UPDATE notifications SET attempts = attempts + 1, status = 'sent',
                    sending_until = NULL, sent_at = now()
              WHERE id = '{sent}'"
        ))
        .await
        .unwrap();
        mailer.release.notify_one();
        (held, taken, sent)
    };
    let (outcomes, (held, taken, sent)) = tokio::join!(batch, meanwhile);

    let outcome = |id: Uuid| &outcomes[ids.iter().position(|i| *i == id).unwrap()];
    assert!(outcome(held).is_ok(), "{:?}", outcome(held));
    for id in [taken, sent] {
        assert!(
            matches!(outcome(id), Err(ProviderError::Transient(m)) if m.contains("another worker")),
            "a lost claim is left to the job's retry: {:?}",
            outcome(id)
        );
    }
    assert_eq!(
        smtp.by_message_id(),
        [(message_id(held), 1)].into(),
        "the server got the held message once, and nothing from the lost claims"
    );
    let status = |id: Uuid| {
        let p = &p;
        async move {
            p.text(&format!(
                "SELECT status || ' ' || attempts FROM notifications WHERE id = '{id}'"
            ))
            .await
        }
    };
    assert_eq!(status(held).await.as_deref(), Some("sent 1"));
    assert_eq!(
        status(taken).await.as_deref(),
        Some("sending 2"),
        "the newer claim still owns the row"
    );
    assert_eq!(
        p.scalar(&format!(
            "SELECT count(*) FROM notifications WHERE id = '{taken}' AND sending_until > now()"
        ))
        .await,
        1,
        "and its lease"
    );
    assert_eq!(status(sent).await.as_deref(), Some("sent 2"));
}

/// SMTP transactions in flight per worker: what a pause may repeat of the e-mail.
const SMTP_POOL_SIZE: usize = 4;
/// Twilio requests in flight per worker: what a pause may repeat of the SMS.
const SMS_MAX_IN_FLIGHT: usize = 4;
/// How long a claimed message stays the paused worker's. The pause lasts until another
/// worker has claimed again every message the paused one held, so it outlasts this, the
/// job lease and the missed heartbeats after which the paused worker's jobs go to others.
/// Long enough that a live worker starved of CPU by the rest of the suite still renews its
/// claims in time (every third of it): with 3 s, such a starved worker lost claims of its
/// own, each loss a pause of its own that may repeat what it had in flight again (11
/// repeats once in a full parallel run).
const DELIVERY_LEASE_SECONDS: &str = "8";

/// The claims held now on `channel`, as `id/attempt`, comma-separated.
async fn claims(p: &Pipeline, channel: &str) -> String {
    p.text(&format!(
        "SELECT string_agg(id || '/' || attempts, ',') FROM notifications
          WHERE channel = '{channel}' AND status = 'sending'"
    ))
    .await
    .unwrap_or_default()
}

/// How many of `claims` still own their rows.
async fn still_held(p: &Pipeline, claims: &str) -> i64 {
    p.scalar(&format!(
        "SELECT count(*) FROM notifications
          WHERE status = 'sending' AND id || '/' || attempts = ANY(string_to_array('{claims}', ','))"
    ))
    .await
}

#[tokio::test]
async fn a_worker_paused_past_its_leases_while_200_bookings_messages_flow_repeats_at_most_what_it_had_in_flight()
 {
    let smtp = FakeSmtp::start(Duration::from_millis(150)).await;
    let twilio = FakeTwilio::start(201, serde_json::json!({"sid": "SM1"})).await;
    let mut vars: Vec<(&str, String)> = vec![
        ("SMTP_URL", smtp.url.clone()),
        ("SMTP_POOL_SIZE", SMTP_POOL_SIZE.to_string()),
        ("SMS_MAX_IN_FLIGHT", SMS_MAX_IN_FLIGHT.to_string()),
        ("DELIVERY_LEASE_SECONDS", DELIVERY_LEASE_SECONDS.into()),
        // Jobs that found their message busy come back soon.
        ("JOB_RETRY_BASE_DELAY_MS", "200".into()),
    ];
    vars.extend(twilio.env());
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let p = Pipeline::new(&vars).await;
    let ids = p.book_many(200).await;

    let mut paused = p.spawn_worker(&[]);
    wait_until(
        "the first worker is sending on both channels",
        Duration::from_secs(60),
        || async { smtp.started.load(Ordering::SeqCst) >= 1 && twilio.requests().len() >= 20 },
    )
    .await;
    paused.pause();
    let paused_at = Instant::now();
    let (emails_before, sms_before) = (smtp.accepted(), twilio.requests().len());
    // The only worker so far: every claim is the paused one's.
    let (email_claims, sms_claims) = (claims(&p, "email").await, claims(&p, "sms").await);
    let claimed = |claims: &str| claims.split(',').filter(|c| !c.is_empty()).count();

    let mut other = p.spawn_worker(&[]);
    wait_until(
        "the other worker claimed every message the paused one had",
        Duration::from_secs(60),
        || async {
            still_held(&p, &email_claims).await == 0 && still_held(&p, &sms_claims).await == 0
        },
    )
    .await;
    let pause = paused_at.elapsed();
    paused.resume();
    p.wait_until_drained(Duration::from_secs(90)).await;
    // Both stop, so that whatever the resumed worker still had under way is counted.
    paused.sigterm();
    other.sigterm();
    paused.exited(Duration::from_secs(30)).await;
    other.exited(Duration::from_secs(30)).await;

    let (email_duplicates, sms_duplicates) = (smtp.duplicates(), twilio.duplicates());
    eprintln!(
        "paused {:.1} s holding {} e-mail and {} SMS claims (after {emails_before} e-mails and \
         {sms_before} SMS): {email_duplicates} e-mail and {sms_duplicates} SMS duplicates",
        pause.as_secs_f64(),
        claimed(&email_claims),
        claimed(&sms_claims),
    );
    // More claims than slots on each channel: sending them all again would break the bound.
    assert!(
        claimed(&email_claims) > SMTP_POOL_SIZE && claimed(&sms_claims) > SMS_MAX_IN_FLIGHT,
        "the pause must land mid-flow on both channels"
    );
    assert_eq!(
        p.scalar("SELECT count(*) FROM notifications WHERE status <> 'sent'")
            .await,
        0
    );
    let by_id = smtp.by_message_id();
    assert_eq!(by_id.len(), 400, "a confirmation and a receipt per booking");
    for id in &ids {
        assert!(smtp.containing(&id.to_string()) >= 2, "booking {id}");
    }
    assert_eq!(twilio.distinct(), 200, "one confirmation SMS per customer");
    assert!(
        email_duplicates <= SMTP_POOL_SIZE,
        "{email_duplicates} duplicate e-mails, more than SMTP_POOL_SIZE"
    );
    assert!(
        sms_duplicates <= SMS_MAX_IN_FLIGHT,
        "{sms_duplicates} duplicate SMS, more than SMS_MAX_IN_FLIGHT"
    );
}
