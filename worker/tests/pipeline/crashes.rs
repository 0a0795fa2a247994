//! Nothing is lost when a worker is killed, when Redis forgets everything, or on SIGTERM.

use std::sync::atomic::Ordering;
use std::time::Duration;

use orderly_shared::entities::users::Role;
use orderly_shared::testing::{RedisServer, wait_until};
use orderly_worker::queues::{QueueTimings, RedisTransport};
use orderly_worker::relay::{RelaySettings, relay_once};

use crate::fakes::FakeSmtp;
use crate::harness::Pipeline;

#[tokio::test]
async fn a_worker_killed_mid_batch_loses_no_job_and_sends_each_confirmation_once() {
    let p = Pipeline::new(&[]).await;
    let listing = p.listing(500).await;
    let mut ids = Vec::new();
    for _ in 0..60 {
        let customer = p.user(Role::Customer, None).await;
        ids.push(p.book(&customer, &listing, 1).await);
    }
    let total = p
        .scalar("SELECT count(*) FROM outbox WHERE run_at <= now()")
        .await;
    let mut first = p.spawn_worker(&[("WORKER_CONCURRENCY", "2")]);
    wait_until(
        "the first worker finished some jobs",
        Duration::from_secs(20),
        || async {
            p.scalar("SELECT count(*) FROM outbox WHERE status = 'done'")
                .await
                >= 20
        },
    )
    .await;
    first.kill_9();
    let done_at_kill = p
        .scalar("SELECT count(*) FROM outbox WHERE status = 'done'")
        .await;
    assert!(
        done_at_kill < total,
        "the kill must land mid-batch ({done_at_kill} of {total} done)"
    );

    let _second = p.spawn_worker(&[]);
    p.wait_until_drained(Duration::from_secs(40)).await;
    assert_eq!(
        p.scalar("SELECT count(*) FROM bookings WHERE status = 'paid'")
            .await,
        60
    );
    assert_eq!(
        p.scalar("SELECT count(*) FROM outbox WHERE status = 'dead'")
            .await,
        0
    );
    let mail = p.mail_files();
    for id in &ids {
        let confirmations = mail
            .iter()
            .filter(|m| m.contains(&id.to_string()) && m.contains("Your booking is confirmed"))
            .count();
        assert_eq!(confirmations, 1, "booking {id}");
    }
}

#[tokio::test]
async fn redis_emptied_with_jobs_pending_still_completes_every_job() {
    let redis = RedisServer::start().await;
    let p = Pipeline::new(&[("REDIS_URL", redis.url.as_str())]).await;
    let listing = p.listing(50).await;
    for _ in 0..15 {
        let customer = p.user(Role::Customer, None).await;
        p.book(&customer, &listing, 1).await;
    }
    // A relay pushes the due jobs to Redis; then Redis loses everything before any worker runs.
    let conn = orderly_shared::redis_conn::connect(&p.settings)
        .await
        .unwrap();
    let timings = QueueTimings {
        heartbeat: Duration::from_secs(1),
        missed_heartbeats: 3,
    };
    let transport = RedisTransport::new(conn.clone(), p.settings.redis_prefix.clone(), timings);
    let pushed = relay_once(&p.db, &transport, &RelaySettings::default())
        .await
        .unwrap();
    assert!(pushed >= 30, "pushed {pushed}");
    assert_eq!(
        p.scalar("SELECT count(*) FROM outbox WHERE status = 'pending' AND run_at <= now()")
            .await,
        0
    );
    let mut conn = conn;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();

    let _worker = p.spawn_worker(&[]);
    p.wait_until_drained(Duration::from_secs(30)).await;
    assert_eq!(
        p.scalar("SELECT count(*) FROM bookings WHERE status = 'paid'")
            .await,
        15
    );
    assert_eq!(p.mail_files().len(), 30);
}

#[tokio::test]
async fn sigterm_lets_the_running_job_finish_and_loses_nothing() {
    let smtp = FakeSmtp::start(Duration::from_millis(1500)).await;
    let p = Pipeline::new(&[("SMTP_URL", smtp.url.as_str())]).await;
    let listing = p.listing(5).await;
    let customer = p.user(Role::Customer, None).await;
    let id = p.book(&customer, &listing, 1).await;
    let mut worker = p.spawn_worker(&[("WORKER_QUEUES", "email")]);
    wait_until(
        "the e-mail is being sent",
        Duration::from_secs(15),
        || async { smtp.started.load(Ordering::SeqCst) >= 1 },
    )
    .await;
    worker.sigterm();
    let status = worker.exited(Duration::from_secs(25)).await;
    assert!(status.success(), "exit status {status}");
    assert_eq!(smtp.accepted(), 1);
    assert_eq!(
        p.text(&format!(
            "SELECT status FROM notifications WHERE booking_id = '{id}' AND kind = 'booking_confirmed'"
        ))
        .await
        .as_deref(),
        Some("sent")
    );
    assert_eq!(
        p.text("SELECT status FROM outbox WHERE job_type = 'send_email'")
            .await
            .as_deref(),
        Some("done")
    );
}
