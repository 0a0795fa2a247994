//! Batched delivery: every message of a batch is sent once, each outcome is committed as
//! soon as its provider answers, a message another worker is sending is left alone until
//! its lease runs out (a live sender keeps renewing it), a late answer never overwrites a
//! newer claim, and batches that overlap never send a message twice.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use orderly_domain::delivery::Delivery;
use orderly_providers::ProviderError;
use orderly_providers::mail::{Mailer, OutgoingEmail};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::harness::Pipeline;

/// Records what it sends; recipients starting with `bounce` fail for good, `busy` for now.
#[derive(Default)]
struct RecordingMailer {
    sent: Mutex<Vec<Uuid>>,
}

#[async_trait]
impl Mailer for RecordingMailer {
    fn name(&self) -> &'static str {
        "recording"
    }

    async fn send(&self, email: &OutgoingEmail) -> Result<String, ProviderError> {
        // A slow send, so that overlapping batches really overlap.
        tokio::time::sleep(Duration::from_millis(20)).await;
        if email.to.starts_with("bounce") {
            return Err(ProviderError::Permanent("550 no such user".into()));
        }
        if email.to.starts_with("busy") {
            return Err(ProviderError::Transient("451 try later".into()));
        }
        self.sent.lock().unwrap().push(email.id);
        Ok(format!("<{}@test>", email.id))
    }
}

async fn notification(p: &Pipeline, recipient: &str, status: &str) -> Uuid {
    let id = Uuid::new_v4();
    p.db.execute_unprepared(&format!(
        "INSERT INTO notifications (id, dedup_key, channel, kind, recipient, status)
         VALUES ('{id}', 'test:{id}', 'email', 'reminder', '{recipient}', '{status}')"
    ))
    .await
    .unwrap();
    id
}

#[tokio::test]
async fn a_batch_sends_each_unsent_row_once_and_records_each_outcome() {
    let p = Pipeline::new(&[]).await;
    let fresh = notification(&p, "ann@example.com", "pending").await;
    let already = notification(&p, "bob@example.com", "sent").await;
    let bounce = notification(&p, "bounce@example.com", "pending").await;
    let busy = notification(&p, "busy@example.com", "pending").await;
    let missing = Uuid::new_v4();
    let dead = notification(&p, "dead@example.com", "failed").await;
    let mailer = RecordingMailer::default();

    let outcomes = Delivery::new(p.db.clone(), Duration::from_secs(60))
        .send_emails(
            &mailer,
            &p.templates,
            &[fresh, already, bounce, busy, missing, fresh, dead],
        )
        .await;

    assert!(outcomes[0].is_ok(), "{:?}", outcomes[0]);
    assert!(outcomes[1].is_ok(), "an already sent row is done");
    assert!(matches!(&outcomes[2], Err(ProviderError::Permanent(m)) if m.contains("550")));
    assert!(matches!(&outcomes[3], Err(ProviderError::Transient(m)) if m.contains("451")));
    assert!(
        matches!(&outcomes[4], Err(ProviderError::Permanent(m)) if m.contains("does not exist"))
    );
    assert!(outcomes[5].is_ok(), "a duplicate gets its twin's outcome");
    assert!(
        matches!(&outcomes[6], Err(ProviderError::Permanent(m)) if m.contains("failed earlier")),
        "a failed row is not sent again: {:?}",
        outcomes[6]
    );
    assert_eq!(
        *mailer.sent.lock().unwrap(),
        vec![fresh],
        "only the fresh row is sent, once"
    );

    let row = |id: Uuid| {
        let db = &p.db;
        async move {
            let r = db
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DatabaseBackend::Postgres,
                    format!("SELECT status, attempts, coalesce(last_error, ''), sent_at IS NOT NULL, coalesce(provider_message_id, '') FROM notifications WHERE id = '{id}'"),
                ))
                .await
                .unwrap()
                .unwrap();
            (
                r.try_get_by_index::<String>(0).unwrap(),
                r.try_get_by_index::<i32>(1).unwrap(),
                r.try_get_by_index::<String>(2).unwrap(),
                r.try_get_by_index::<bool>(3).unwrap(),
                r.try_get_by_index::<String>(4).unwrap(),
            )
        }
    };
    assert_eq!(
        row(fresh).await,
        (
            "sent".into(),
            1,
            String::new(),
            true,
            format!("<{fresh}@test>")
        )
    );
    assert_eq!(row(already).await.1, 0, "a sent row is not touched");
    let (status, attempts, error, sent, _) = row(bounce).await;
    assert_eq!((status.as_str(), attempts, sent), ("failed", 1, false));
    assert!(error.contains("550"), "{error}");
    let (status, attempts, error, _, _) = row(busy).await;
    assert_eq!((status.as_str(), attempts), ("pending", 1), "retried later");
    assert!(error.contains("451"), "{error}");
    assert_eq!(
        p.scalar(&format!(
            "SELECT count(*) FROM notifications WHERE sending_until IS NOT NULL AND id IN ('{fresh}', '{bounce}', '{busy}')"
        ))
        .await,
        0,
        "an answered row holds no lease"
    );
    assert_eq!(row(dead).await.1, 0, "a failed row is not touched");
}

#[tokio::test]
async fn overlapping_batches_take_turns_and_send_each_message_once() {
    let p = Pipeline::new(&[]).await;
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(notification(&p, &format!("guest{i}@example.com"), "pending").await);
    }
    let mailer = RecordingMailer::default();
    // Four batches over the same rows, in different orders and overlapping halves.
    let mut reversed = ids.clone();
    reversed.reverse();
    let delivery = Delivery::new(p.db.clone(), Duration::from_secs(60));
    let (a, b, c, d) = tokio::join!(
        delivery.send_emails(&mailer, &p.templates, &ids),
        delivery.send_emails(&mailer, &p.templates, &reversed),
        delivery.send_emails(&mailer, &p.templates, &ids[..25]),
        delivery.send_emails(&mailer, &p.templates, &reversed[..25]),
    );
    // A message another batch is sending is left to it: the job retries, finding it sent.
    for outcome in a.iter().chain(&b).chain(&c).chain(&d) {
        assert!(
            match outcome {
                Ok(()) => true,
                Err(ProviderError::Transient(m)) => m.contains("another worker"),
                Err(_) => false,
            },
            "{outcome:?}"
        );
    }
    let retried = delivery.send_emails(&mailer, &p.templates, &ids).await;
    assert!(retried.iter().all(Result::is_ok), "{retried:?}");
    let mut sent = mailer.sent.lock().unwrap().clone();
    sent.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(sent, expected, "every message exactly once");
    assert_eq!(
        p.scalar("SELECT count(*) FROM notifications WHERE status = 'sent' AND attempts = 1")
            .await,
        40
    );
}

#[tokio::test]
async fn a_message_another_worker_is_sending_waits_for_its_lease_then_goes_again() {
    let p = Pipeline::new(&[]).await;
    let live = notification(&p, "live@example.com", "sending").await;
    let lapsed = notification(&p, "lapsed@example.com", "sending").await;
    p.db.execute_unprepared(&format!(
        "UPDATE notifications SET sending_until = now() + interval '1 minute' WHERE id = '{live}';
         UPDATE notifications SET sending_until = now() - interval '1 second' WHERE id = '{lapsed}'"
    ))
    .await
    .unwrap();
    let mailer = RecordingMailer::default();
    let outcomes = Delivery::new(p.db.clone(), Duration::from_secs(60))
        .send_emails(&mailer, &p.templates, &[live, lapsed])
        .await;
    assert!(
        matches!(&outcomes[0], Err(ProviderError::Transient(m)) if m.contains("another worker")),
        "{:?}",
        outcomes[0]
    );
    assert!(outcomes[1].is_ok(), "{:?}", outcomes[1]);
    assert_eq!(*mailer.sent.lock().unwrap(), vec![lapsed]);
    assert_eq!(
        p.text(&format!(
            "SELECT status FROM notifications WHERE id = '{live}'"
        ))
        .await
        .as_deref(),
        Some("sending")
    );
}

/// Holds the send to `held` until released, then answers it with `held_answer`; sends
/// every other message at once.
struct HoldingMailer {
    held: Uuid,
    /// Told when the held message reaches the provider (past every check before sending).
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
    held_answer: Result<(), ProviderError>,
}

impl HoldingMailer {
    fn new(held: Uuid) -> Self {
        Self {
            held,
            entered: tokio::sync::Notify::new(),
            release: tokio::sync::Notify::new(),
            held_answer: Ok(()),
        }
    }
}

#[async_trait]
impl Mailer for HoldingMailer {
    fn name(&self) -> &'static str {
        "holding"
    }

    async fn send(&self, email: &OutgoingEmail) -> Result<String, ProviderError> {
        if email.id == self.held {
            self.entered.notify_one();
            self.release.notified().await;
            self.held_answer.clone()?;
        }
        Ok(format!("<{}@test>", email.id))
    }
}

#[tokio::test]
async fn each_message_is_recorded_sent_while_the_rest_of_its_batch_is_still_in_flight() {
    let p = Pipeline::new(&[]).await;
    let quick = notification(&p, "quick@example.com", "pending").await;
    let slow = notification(&p, "slow@example.com", "pending").await;
    let mailer = HoldingMailer::new(slow);
    let delivery = Delivery::new(p.db.clone(), Duration::from_secs(60));
    let both = [quick, slow];
    let batch = delivery.send_emails(&mailer, &p.templates, &both);
    let check = async {
        orderly_testing::wait_until(
            "the quick message is committed as sent",
            Duration::from_secs(10),
            || async {
                p.text(&format!(
                    "SELECT status FROM notifications WHERE id = '{quick}'"
                ))
                .await
                .as_deref()
                    == Some("sent")
            },
        )
        .await;
        assert_eq!(
            p.text(&format!(
                "SELECT status FROM notifications WHERE id = '{slow}'"
            ))
            .await
            .as_deref(),
            Some("sending"),
            "the slow one is still with its provider"
        );
        mailer.release.notify_one();
    };
    let (outcomes, ()) = tokio::join!(batch, check);
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    assert_eq!(
        p.scalar(
            "SELECT count(*) FROM notifications WHERE status = 'sent' AND sending_until IS NULL"
        )
        .await,
        2
    );
}

#[tokio::test]
async fn a_live_sender_keeps_renewing_its_lease_so_no_other_worker_takes_the_message() {
    let p = Pipeline::new(&[]).await;
    let slow = notification(&p, "slow@example.com", "pending").await;
    let mailer = HoldingMailer::new(slow);
    // A lease of one second, and a provider that takes three.
    let delivery = Delivery::new(p.db.clone(), Duration::from_secs(1));
    let one = [slow];
    let batch = delivery.send_emails(&mailer, &p.templates, &one);
    let meanwhile = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            p.scalar(&format!(
                "SELECT count(*) FROM notifications
                  WHERE id = '{slow}' AND status = 'sending' AND sending_until > now()"
            ))
            .await,
            1,
            "the lease was renewed while the provider worked"
        );
        let other = delivery
            .send_emails(&RecordingMailer::default(), &p.templates, &[slow])
            .await;
        assert!(
            matches!(&other[0], Err(ProviderError::Transient(m)) if m.contains("another worker")),
            "{other:?}"
        );
        mailer.release.notify_one();
    };
    let (outcomes, ()) = tokio::join!(batch, meanwhile);
    assert!(outcomes[0].is_ok(), "{outcomes:?}");
    assert_eq!(
        p.text(&format!(
            "SELECT status || ' ' || attempts FROM notifications WHERE id = '{slow}'"
        ))
        .await
        .as_deref(),
        Some("sent 1")
    );
}

#[tokio::test]
async fn a_late_failure_leaves_a_newer_claim_alone_but_a_late_send_is_recorded() {
    let p = Pipeline::new(&[]).await;
    let failing = notification(&p, "failing@example.com", "pending").await;
    let sending = notification(&p, "sending@example.com", "pending").await;
    let delivery = Delivery::new(p.db.clone(), Duration::from_secs(60));
    let claimed_again = |id: Uuid| {
        // As if this claim had lapsed and another worker had claimed the row since.
        let db = &p.db;
        async move {
            db.execute_unprepared(&format!(
                "UPDATE notifications SET attempts = attempts + 1 WHERE id = '{id}'"
            ))
            .await
            .unwrap();
        }
    };
    let status = |id: Uuid| {
        let p = &p;
        async move {
            p.text(&format!(
                "SELECT status || ' ' || attempts FROM notifications WHERE id = '{id}'"
            ))
            .await
        }
    };

    let mut mailer = HoldingMailer::new(failing);
    mailer.held_answer = Err(ProviderError::Transient("451 try later".into()));
    let one = [failing];
    let batch = delivery.send_emails(&mailer, &p.templates, &one);
    let meanwhile = async {
        orderly_testing::wait_until("claimed", Duration::from_secs(10), || async {
            status(failing).await.as_deref() == Some("sending 1")
        })
        .await;
        // The claim is bumped only once the message is at the provider, as a lapse would.
        mailer.entered.notified().await;
        claimed_again(failing).await;
        mailer.release.notify_one();
    };
    let (outcomes, ()) = tokio::join!(batch, meanwhile);
    assert!(matches!(&outcomes[0], Err(ProviderError::Transient(_))));
    assert_eq!(
        status(failing).await.as_deref(),
        Some("sending 2"),
        "the newer claim still owns the row"
    );

    let mailer = HoldingMailer::new(sending);
    let one = [sending];
    let batch = delivery.send_emails(&mailer, &p.templates, &one);
    let meanwhile = async {
        orderly_testing::wait_until("claimed", Duration::from_secs(10), || async {
            status(sending).await.as_deref() == Some("sending 1")
        })
        .await;
        mailer.entered.notified().await;
        claimed_again(sending).await;
        mailer.release.notify_one();
    };
    let (outcomes, ()) = tokio::join!(batch, meanwhile);
    assert!(outcomes[0].is_ok(), "{outcomes:?}");
    assert_eq!(
        status(sending).await.as_deref(),
        Some("sent 2"),
        "the message went out, whichever claim sent it"
    );
}
