//! The worker's own `/metrics` after real jobs: counters and histograms with their labels,
//! provider calls, and the backlog gauges an autoscaler reads.

use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::time::Duration;

use orderly_testing::metrics::{free_addr, scrape, series};
use orderly_testing::wait_until;

use crate::harness::{Pipeline, WorkerProcess};

/// A worker serving `/metrics` on a port that was free a moment before. If something else
/// took the port first, the worker exits naming `METRICS_ADDR`, and another port is tried.
async fn worker_with_metrics(p: &Pipeline, extra: &[(&str, &str)]) -> (WorkerProcess, SocketAddr) {
    for _ in 0..5 {
        let addr = free_addr();
        let metrics_addr = addr.to_string();
        let mut vars = vec![("METRICS_ADDR", metrics_addr.as_str())];
        vars.extend_from_slice(extra);
        let mut worker = p.spawn_worker(&vars);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while worker.is_running() && tokio::time::Instant::now() < deadline {
            if scrape(addr).await.is_some() && worker.is_running() {
                return (worker, addr);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("no worker served /metrics");
}

/// Scrapes until `name_and_labels` reads `expected` (counters trail the database a little:
/// a job's end is recorded, then counted).
async fn wait_for(addr: SocketAddr, name_and_labels: &str, expected: f64) -> String {
    let mut last = String::new();
    let reached = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(text) = scrape(addr).await {
                if series(&text, name_and_labels) == Some(expected) {
                    return text;
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    match reached {
        Ok(text) => text,
        Err(_) => panic!("{name_and_labels} never read {expected}; last scrape:\n{last}"),
    }
}

#[tokio::test]
async fn metrics_count_real_jobs_and_provider_calls_with_their_labels() {
    let p = Pipeline::with_mail_files(&[]).await;
    p.enqueue_noops(5).await;
    p.book_many(3).await;
    let (_worker, addr) = worker_with_metrics(&p, &[]).await;
    p.wait_until_drained(Duration::from_secs(30)).await;

    let noop = r#"queue="bookings",job_type="noop""#;
    let text = wait_for(
        addr,
        &format!(r#"jobs_total{{{noop},outcome="done"}}"#),
        5.0,
    )
    .await;
    let value = |s: &str| series(&text, s);
    assert_eq!(
        value(&format!("job_duration_seconds_count{{{noop}}}")),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        value(&format!("job_queue_wait_seconds_count{{{noop}}}")),
        Some(5.0),
        "{text}"
    );
    assert_eq!(
        value(&format!(
            r#"job_attempts_bucket{{{noop},outcome="done",le="1"}}"#
        )),
        Some(5.0),
        "each took one attempt: {text}"
    );
    assert_eq!(
        value(r#"jobs_total{queue="bookings",job_type="noop",outcome="dead"}"#),
        None,
        "{text}"
    );
    assert!(
        value(r#"relay_pushed_total{queue="bookings"}"#) >= Some(5.0),
        "{text}"
    );

    // Three bookings: a capture each, a confirmation SMS each, two e-mails each.
    for (name_and_labels, expected) in [
        (
            r#"jobs_total{queue="payments",job_type="capture_payment",outcome="done"}"#,
            3.0,
        ),
        (
            r#"provider_calls_total{provider="simulated",operation="capture",outcome="ok"}"#,
            3.0,
        ),
        (
            r#"provider_calls_total{provider="log",operation="send",outcome="ok"}"#,
            3.0,
        ),
        (
            r#"provider_calls_total{provider="file",operation="send",outcome="ok"}"#,
            6.0,
        ),
        (
            r#"provider_call_duration_seconds_count{provider="simulated",operation="capture"}"#,
            3.0,
        ),
    ] {
        wait_for(addr, name_and_labels, expected).await;
    }
}

#[tokio::test]
async fn metrics_show_the_depth_and_oldest_age_of_a_queue_no_worker_takes() {
    let p = Pipeline::new(&[]).await;
    // A worker that relays every queue but drains only e-mail.
    let (_worker, addr) = worker_with_metrics(&p, &[("WORKER_QUEUES", "email")]).await;
    p.enqueue_noops(7).await;

    let text = wait_for(addr, r#"job_queue_depth{queue="bookings"}"#, 7.0).await;
    let age = series(&text, r#"job_queue_oldest_age_seconds{queue="bookings"}"#).unwrap();
    assert!(age > 0.0, "{text}");
    assert_eq!(
        series(&text, r#"job_queue_depth{queue="email"}"#),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        series(&text, r#"jobs_running{queue="bookings"}"#),
        Some(0.0),
        "{text}"
    );
    assert!(
        series(&text, r#"outbox_lag_seconds{queue="bookings"}"#).is_some(),
        "{text}"
    );
    // Pushed to Redis, untouched: none has started.
    wait_until("the relay pushed them", Duration::from_secs(10), || async {
        p.scalar("SELECT count(*) FROM outbox WHERE status = 'enqueued'")
            .await
            == 7
    })
    .await;
}

#[test]
fn a_metrics_addr_already_taken_stops_the_worker_naming_it() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_orderly-worker"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/nothing")
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .env("METRICS_ADDR", &addr)
        .output()
        .expect("running orderly-worker");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on METRICS_ADDR={addr}")),
        "{stderr}"
    );
}
