//! Nothing is lost and nothing is sent twice (beyond what was in flight) when a worker is
//! killed, when Redis forgets everything, or on SIGTERM. Effects are counted at the
//! protocol peers: messages accepted by the SMTP server, requests at the SMS provider.

use std::sync::atomic::Ordering;
use std::time::Duration;

use orderly_db::users::Role;
use orderly_testing::{RedisServer, wait_until};
use orderly_worker::queues::RedisTransport;
use orderly_worker::relay::{RelaySettings, relay_once};

use crate::fakes::{FakeSmtp, FakeTwilio};
use crate::harness::Pipeline;

/// SMTP transactions in flight per worker in the kill test: what a kill can duplicate.
const SMTP_IN_FLIGHT: &str = "2";

#[tokio::test]
pub(crate) async fn a_worker_killed_while_a_slow_smtp_server_takes_200_bookings_messages_duplicates_at_most_two_and_loses_none()
 {
    let smtp = FakeSmtp::start(Duration::from_millis(150)).await;
    let twilio = FakeTwilio::start(201, serde_json::json!({"sid": "SM1"})).await;
    let mut vars: Vec<(&str, String)> = vec![
        ("SMTP_URL", smtp.url.clone()),
        ("SMTP_POOL_SIZE", SMTP_IN_FLIGHT.into()),
        ("DELIVERY_LEASE_SECONDS", "5".into()),
    ];
    vars.extend(twilio.env());
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let p = Pipeline::new(&vars).await;
    let ids = p.book_many(200).await;

    let mut first = p.spawn_worker(&[]);
    wait_until(
        "the first worker sent some messages",
        Duration::from_secs(60),
        || async { smtp.accepted() >= 60 },
    )
    .await;
    first.kill_9();
    let at_kill = smtp.accepted();
    assert!(
        at_kill < 400,
        "the kill must land mid-flow ({at_kill} of 400 e-mails)"
    );

    let _second = p.spawn_worker(&[]);
    p.wait_until_drained(Duration::from_secs(120)).await;
    assert_eq!(
        p.scalar("SELECT count(*) FROM bookings WHERE status = 'paid'")
            .await,
        200
    );
    assert_eq!(
        p.scalar("SELECT count(*) FROM outbox WHERE status = 'dead'")
            .await,
        0
    );
    assert_eq!(
        p.scalar("SELECT count(*) FROM notifications WHERE status <> 'sent'")
            .await,
        0
    );
    // Every confirmation and receipt arrived; a repeat is only a message whose SMTP
    // transaction was in flight at the kill.
    let by_id = smtp.by_message_id();
    assert_eq!(by_id.len(), 400, "a confirmation and a receipt per booking");
    for id in &ids {
        assert!(smtp.containing(&id.to_string()) >= 2, "booking {id}");
    }
    let email_duplicates = smtp.duplicates();
    let sms_duplicates = twilio.duplicates();
    eprintln!("kill test: {email_duplicates} e-mail and {sms_duplicates} SMS duplicates");
    assert!(
        email_duplicates <= 2,
        "{email_duplicates} duplicate e-mails"
    );
    assert!(sms_duplicates <= 2, "{sms_duplicates} duplicate SMS");
    assert_eq!(twilio.distinct(), 200, "one confirmation SMS per customer");
}

#[tokio::test]
async fn redis_emptied_with_jobs_pushed_still_completes_every_job_once() {
    let redis = RedisServer::start().await;
    let smtp = FakeSmtp::start(Duration::ZERO).await;
    let p = Pipeline::new(&[
        ("REDIS_URL", redis.url.as_str()),
        ("SMTP_URL", smtp.url.as_str()),
    ])
    .await;
    let listing = p.listing(50).await;
    for _ in 0..15 {
        let customer = p.user(Role::Customer, None).await;
        p.book(&customer, &listing, 1).await;
    }
    // A relay pushes the due jobs to Redis; then Redis loses everything before any worker runs.
    let conn = p.redis().await;
    let transport = RedisTransport::new(conn.clone(), p.settings.redis_prefix.clone());
    let pushed = relay_once(&p.db, &transport, &RelaySettings::default(), &[])
        .await
        .unwrap()
        .pushed;
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
    assert_eq!(smtp.by_message_id().len(), 30);
    assert_eq!(smtp.duplicates(), 0);
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
