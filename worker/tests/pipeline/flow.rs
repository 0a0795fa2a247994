//! The happy path and the outbox's basic promises.

use std::time::Duration;

use orderly_jobs::{Noop, outbox};
use sea_orm::TransactionTrait;
use uuid::Uuid;

use crate::harness::Pipeline;

#[tokio::test]
async fn a_rolled_back_transaction_leaves_no_job_and_a_committed_one_leaves_one() {
    let p = Pipeline::new(&[]).await;
    let job = Noop { id: Uuid::new_v4() };
    let txn = p.db.begin().await.unwrap();
    assert!(outbox::enqueue(&txn, &job, None, None).await.unwrap());
    txn.rollback().await.unwrap();
    assert_eq!(p.scalar("SELECT count(*) FROM outbox").await, 0);

    let txn = p.db.begin().await.unwrap();
    assert!(outbox::enqueue(&txn, &job, None, None).await.unwrap());
    txn.commit().await.unwrap();
    assert!(
        !outbox::enqueue(&p.db, &job, None, None).await.unwrap(),
        "the same work is enqueued once"
    );
    assert_eq!(p.scalar("SELECT count(*) FROM outbox").await, 1);
}

#[tokio::test]
pub(crate) async fn bookings_become_paid_with_one_confirmation_email_and_sms_each() {
    let p = Pipeline::new(&[]).await;
    let listing = p.listing(100).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let customer = p
            .user(orderly_db::users::Role::Customer, Some("+4915112345678"))
            .await;
        ids.push(p.book(&customer, &listing, 2).await);
    }
    let _worker = p.spawn_worker(&[]);
    p.wait_until_drained(Duration::from_secs(30)).await;

    assert_eq!(
        p.scalar("SELECT count(*) FROM bookings WHERE status = 'paid'")
            .await,
        20
    );
    assert_eq!(p.scalar("SELECT count(*) FROM payments WHERE status = 'captured' AND amount_captured_cents = 8400").await, 20);
    assert_eq!(
        p.scalar("SELECT count(*) FROM notifications WHERE status = 'sent' AND kind = 'booking_confirmed' AND channel = 'email'").await,
        20
    );
    assert_eq!(
        p.scalar("SELECT count(*) FROM notifications WHERE status = 'sent' AND kind = 'booking_confirmed' AND channel = 'sms'").await,
        20
    );
    assert_eq!(
        p.scalar(
            "SELECT count(*) FROM notifications WHERE kind = 'payment_receipt' AND status = 'sent'"
        )
        .await,
        20
    );
    let mail = p.mails();
    assert_eq!(mail.len(), 40, "a confirmation and a receipt per booking");
    for id in &ids {
        let confirmations = mail
            .iter()
            .filter(|m| m.contains(&id.to_string()) && m.contains("Your booking is confirmed"))
            .count();
        assert_eq!(confirmations, 1, "booking {id}");
    }
    let sms = std::fs::read_to_string(p.data_dir.join("sms.log")).unwrap();
    assert_eq!(sms.lines().count(), 20);
    assert_eq!(
        p.scalar(
            "SELECT count(*) FROM outbox WHERE status <> 'done' AND job_type NOT IN ('expire_booking', 'create_payment')"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn cancelling_a_paid_booking_refunds_it_once_and_tells_the_customer() {
    let p = Pipeline::new(&[]).await;
    let listing = p.listing(10).await;
    let customer = p.user(orderly_db::users::Role::Customer, None).await;
    let id = p.book(&customer, &listing, 2).await;
    let _worker = p.spawn_worker(&[]);
    orderly_testing::wait_until("the booking is paid", Duration::from_secs(20), || async {
        p.text(&format!("SELECT status FROM bookings WHERE id = '{id}'"))
            .await
            .as_deref()
            == Some("paid")
    })
    .await;

    orderly_domain::bookings::cancel(
        &p.db,
        id,
        orderly_domain::bookings::CancelledBy::Admin,
        None,
    )
    .await
    .unwrap();
    orderly_testing::wait_until(
        "the booking is refunded",
        Duration::from_secs(20),
        || async {
            p.text(&format!("SELECT status FROM bookings WHERE id = '{id}'"))
                .await
                .as_deref()
                == Some("refunded")
        },
    )
    .await;
    assert_eq!(
        p.scalar(&format!(
            "SELECT amount_refunded_cents FROM payments WHERE booking_id = '{id}'"
        ))
        .await,
        8400
    );
    assert_eq!(
        p.scalar(&format!(
            "SELECT seats_left::bigint FROM listings WHERE id = '{}'",
            listing.id
        ))
        .await,
        10
    );
    p.wait_until_drained(Duration::from_secs(20)).await;
    let mail = p.mails();
    assert_eq!(
        mail.iter()
            .filter(|m| m.contains("Your refund is on its way"))
            .count(),
        1
    );
    assert_eq!(
        mail.iter()
            .filter(|m| m.contains("Your booking was cancelled"))
            .count(),
        1
    );
}

#[tokio::test]
async fn many_jobs_go_in_with_one_statement_and_repeats_are_skipped() {
    use orderly_jobs::outbox::NewJob;
    let p = Pipeline::new(&[]).await;
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let first = Noop { id: Uuid::new_v4() };
    let second = Noop { id: Uuid::new_v4() };
    let jobs = vec![
        NewJob::of(&first, None, Some("req-1")).unwrap(),
        NewJob::of(&second, Some(later), None).unwrap(),
        NewJob::of(&first, None, None).unwrap(),
    ];
    let txn = p.db.begin().await.unwrap();
    assert_eq!(outbox::enqueue_many(&txn, &jobs).await.unwrap(), 2);
    txn.rollback().await.unwrap();
    assert_eq!(p.scalar("SELECT count(*) FROM outbox").await, 0);

    assert_eq!(outbox::enqueue_many(&p.db, &jobs).await.unwrap(), 2);
    assert_eq!(outbox::enqueue_many(&p.db, &jobs).await.unwrap(), 0);
    assert_eq!(
        p.text(&format!(
            "SELECT request_id FROM outbox WHERE task_id = 'noop:{}'",
            first.id
        ))
        .await
        .as_deref(),
        Some("req-1")
    );
    assert_eq!(
        p.scalar(&format!(
            "SELECT count(*) FROM outbox WHERE task_id = 'noop:{}' AND request_id IS NULL
                AND run_at > now() + interval '59 minutes' AND payload->>'id' = '{}'",
            second.id, second.id
        ))
        .await,
        1
    );
}

#[tokio::test]
async fn concurrent_enqueues_share_commits_and_every_job_runs() {
    let p = Pipeline::new(&[]).await;
    let enqueuer = orderly_jobs::Enqueuer::start(p.db.clone());
    let calls = (0..300).map(|_| {
        let enqueuer = enqueuer.clone();
        async move { enqueuer.enqueue(&Noop { id: Uuid::new_v4() }, None).await }
    });
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    assert_eq!(p.scalar("SELECT count(*) FROM outbox").await, 300);
    assert!(
        p.scalar("SELECT count(DISTINCT xmin::text) FROM outbox")
            .await
            < 300,
        "calls made together are committed together"
    );
    let _worker = p.spawn_worker(&[]);
    p.wait_until_drained(Duration::from_secs(30)).await;
    assert_eq!(
        p.scalar("SELECT count(*) FROM outbox WHERE status = 'done'")
            .await,
        300
    );
}
