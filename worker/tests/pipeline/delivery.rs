//! Batched delivery: every message of a batch is sent once, outcomes land per row, and
//! batches that overlap take turns instead of sending twice or deadlocking.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use orderly_shared::domain::delivery;
use orderly_shared::providers::ProviderError;
use orderly_shared::providers::mail::{Mailer, OutgoingEmail};
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
    let mailer = RecordingMailer::default();

    let outcomes = delivery::send_emails(
        &p.db,
        &mailer,
        &[fresh, already, bounce, busy, missing, fresh],
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
    let (a, b, c, d) = tokio::join!(
        delivery::send_emails(&p.db, &mailer, &ids),
        delivery::send_emails(&p.db, &mailer, &reversed),
        delivery::send_emails(&p.db, &mailer, &ids[..25]),
        delivery::send_emails(&p.db, &mailer, &reversed[..25]),
    );
    for outcome in a.iter().chain(&b).chain(&c).chain(&d) {
        assert!(outcome.is_ok(), "{outcome:?}");
    }
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
