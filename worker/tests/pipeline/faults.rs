//! Faults are normal input: a backlog far larger than Redis should hold, Redis paused or
//! restarted empty mid-flow, a worker whose clock is a minute off, a job that kills its
//! worker. Each ends with every effect done once, counted at the SMTP server.

use std::time::Duration;

use orderly_jobs::Queue;
use orderly_testing::{RedisServer, wait_until};
use redis::AsyncCommands;

use crate::fakes::FakeSmtp;
use crate::harness::Pipeline;

#[tokio::test]
pub(crate) async fn a_backlog_of_20000_jobs_drains_with_no_worker_restart_and_redis_holding_only_a_window()
 {
    let p = Pipeline::new(&[]).await;
    p.enqueue_noops(20_000).await;
    let keys = p.keys(Queue::Bookings);
    let mut redis = p.redis().await;

    let mut worker = p.spawn_worker(&[("WORKER_QUEUES", "bookings")]);
    let largest = std::sync::atomic::AtomicUsize::new(0);
    wait_until("20 000 jobs done", Duration::from_secs(180), || async {
        let held: usize = redis.clone().hlen(keys.data()).await.unwrap();
        largest.fetch_max(held, std::sync::atomic::Ordering::SeqCst);
        p.scalar("SELECT count(*) FROM outbox WHERE status = 'done'")
            .await
            == 20_000
    })
    .await;
    let largest = largest.into_inner();
    assert!(worker.is_running(), "the worker must not have exited");
    // Concurrency 64: a window of 2 × 64 waiting, 64 running, one fetch batch (50) buffered.
    assert!(
        largest > 0 && largest <= 2 * 64 + 64 + 50,
        "Redis held {largest} tasks at once"
    );
    let workers: Vec<String> = redis.zrange(keys.workers(), 0, -1).await.unwrap();
    assert_eq!(
        workers.len(),
        1,
        "one queue worker, never restarted: {workers:?}"
    );
    assert!(workers[0].ends_with("-0"), "{workers:?}");
    // A task is acknowledged in Redis just after its end is committed in PostgreSQL.
    wait_until(
        "finished tasks leave Redis",
        Duration::from_secs(10),
        || async { redis.clone().hlen::<_, usize>(keys.data()).await.unwrap() == 0 },
    )
    .await;
}

/// A pipeline sending e-mail to `smtp` through its own Redis server.
async fn with_private_redis(smtp: &FakeSmtp, redis: &RedisServer) -> Pipeline {
    Pipeline::new(&[
        ("REDIS_URL", redis.url.as_str()),
        ("SMTP_URL", smtp.url.as_str()),
    ])
    .await
}

#[tokio::test]
async fn redis_paused_mid_flow_delays_the_queues_and_every_message_goes_once() {
    let smtp = FakeSmtp::start(Duration::from_millis(20)).await;
    let redis = RedisServer::start().await;
    let p = with_private_redis(&smtp, &redis).await;
    p.book_many(40).await;
    let _worker = p.spawn_worker(&[]);
    wait_until("some messages went", Duration::from_secs(30), || async {
        smtp.accepted() >= 10
    })
    .await;
    let mut conn = p.redis().await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3000)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .unwrap();
    // Bookings are still taken while Redis is paused: the outbox holds their work.
    p.book_many(10).await;
    p.wait_until_drained(Duration::from_secs(60)).await;
    assert_eq!(
        p.scalar("SELECT count(*) FROM bookings WHERE status = 'paid'")
            .await,
        50
    );
    assert_eq!(smtp.by_message_id().len(), 100);
    assert_eq!(smtp.duplicates(), 0);
}

#[tokio::test]
async fn redis_restarted_empty_mid_flow_loses_nothing_and_sends_every_message_once() {
    let smtp = FakeSmtp::start(Duration::from_millis(20)).await;
    let mut redis = RedisServer::start().await;
    let port = redis.port;
    let p = with_private_redis(&smtp, &redis).await;
    p.book_many(40).await;
    let _worker = p.spawn_worker(&[]);
    wait_until("some messages went", Duration::from_secs(30), || async {
        smtp.accepted() >= 10
    })
    .await;
    redis.stop();
    p.book_many(10).await;
    let _redis = RedisServer::start_on(port).await;
    p.wait_until_drained(Duration::from_secs(60)).await;
    assert_eq!(
        p.scalar("SELECT count(*) FROM bookings WHERE status = 'paid'")
            .await,
        50
    );
    assert_eq!(smtp.by_message_id().len(), 100);
    assert_eq!(smtp.duplicates(), 0);
}

/// Debian's libfaketime (package `libfaketime`, installed by the test command).
fn libfaketime() -> String {
    std::fs::read_dir("/usr/lib")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists())
        .expect("libfaketime is not installed (apt-get install faketime)")
        .display()
        .to_string()
}

#[tokio::test]
async fn a_worker_whose_clock_is_a_minute_ahead_runs_no_job_twice_and_evicts_no_one() {
    let smtp = FakeSmtp::start(Duration::from_millis(20)).await;
    let p = Pipeline::new(&[("SMTP_URL", smtp.url.as_str())]).await;
    p.book_many(60).await;
    let mut honest = p.spawn_worker(&[]);
    let skew = [
        ("LD_PRELOAD", libfaketime()),
        ("FAKETIME", "+60".to_owned()),
    ];
    // The clock really is off under these settings.
    let date = std::process::Command::new("date")
        .arg("+%s")
        .envs(skew.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let faked: i64 = String::from_utf8_lossy(&date.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(
        faked - chrono::Utc::now().timestamp() >= 55,
        "faketime had no effect"
    );
    let skew: Vec<(&str, &str)> = skew.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut ahead = p.spawn_worker(&skew);
    p.wait_until_drained(Duration::from_secs(60)).await;
    assert!(honest.is_running() && ahead.is_running());
    assert_eq!(
        p.scalar("SELECT count(*) FROM bookings WHERE status = 'paid'")
            .await,
        60
    );
    assert_eq!(smtp.by_message_id().len(), 120);
    assert_eq!(smtp.duplicates(), 0);
    assert_eq!(
        p.scalar("SELECT coalesce(sum(worker_losses), 0)::bigint FROM outbox")
            .await,
        0,
        "no run was taken from a live worker"
    );
    // Both processes still heart-beat, and each queue still has both of its workers.
    assert_eq!(
        p.scalar("SELECT count(*) FROM workers WHERE heartbeat_at > now() - interval '5 seconds'")
            .await,
        2
    );
    let mut redis = p.redis().await;
    let email: Vec<String> = redis
        .zrange(p.keys(Queue::Email).workers(), 0, -1)
        .await
        .unwrap();
    assert_eq!(email.len(), 2, "{email:?}");
}

/// The confirmation e-mail's job (the receipt's, once the capture ran, is another
/// `send_email` row).
const CONFIRMATION: &str = "job_type = 'send_email' AND payload->>'notification_id' = (SELECT id::text FROM notifications WHERE kind = 'booking_confirmed')";

#[tokio::test]
async fn a_job_that_kills_its_worker_is_dead_after_its_limit_saying_the_worker_was_lost() {
    // The e-mail takes long enough at the server for each run to be killed mid-way.
    let smtp = FakeSmtp::start(Duration::from_secs(30)).await;
    let p = Pipeline::new(&[("SMTP_URL", smtp.url.as_str())]).await;
    let listing = p.listing(5).await;
    let customer = p.user(orderly_db::users::Role::Customer, None).await;
    p.book(&customer, &listing, 1).await;
    // A message left `sending` by a killed run may go again after a second.
    let settings = [
        ("JOB_MAX_ATTEMPTS", "3"),
        ("JOB_RETRY_BASE_DELAY_MS", "50"),
        ("DELIVERY_LEASE_SECONDS", "1"),
    ];
    for run in 1..=3 {
        let mut worker = p.spawn_worker(&settings);
        wait_until(
            &format!("run {run} of the e-mail started"),
            Duration::from_secs(30),
            || async {
                p.scalar(&format!(
                    "SELECT count(*) FROM outbox WHERE {CONFIRMATION} AND status = 'running' AND attempts = {run}"
                ))
                .await
                    == 1
            },
        )
        .await;
        worker.kill_9();
    }
    // Another process's reconciler sees the last run's lease lapse.
    let _reconciler = p.spawn_worker(&[("WORKER_QUEUES", "reports"), ("JOB_MAX_ATTEMPTS", "3")]);
    wait_until(
        "the e-mail job is dead",
        Duration::from_secs(30),
        || async {
            p.text(&format!("SELECT status FROM outbox WHERE {CONFIRMATION}"))
                .await
                .as_deref()
                == Some("dead")
        },
    )
    .await;
    let error = p
        .text(&format!(
            "SELECT last_error FROM outbox WHERE {CONFIRMATION}"
        ))
        .await
        .unwrap();
    assert!(error.contains("worker lost 3 times"), "{error}");
    assert_eq!(
        p.scalar(&format!(
            "SELECT worker_losses::bigint FROM outbox WHERE {CONFIRMATION}"
        ))
        .await,
        3
    );
    assert_eq!(
        p.text("SELECT status FROM notifications WHERE kind = 'booking_confirmed'")
            .await
            .as_deref(),
        Some("failed")
    );
}
