//! The scheduler's own `/metrics`: which replica leads, and the ticks it fired per entry.

use std::net::SocketAddr;
use std::time::Duration;

use orderly_testing::metrics::{free_addr, scrape, series};
use orderly_testing::wait_until;

use crate::harness::{Harness, SchedulerProcess, pid_of};

const EVERY_SECOND: &str = "* * * * * *";
const YEARLY: &str = "0 0 0 1 1 *";

/// A scheduler serving `/metrics` on a port that was free a moment before (another is
/// tried if something took it first: the scheduler then exits naming `METRICS_ADDR`).
async fn scheduler_with_metrics(h: &Harness) -> (SchedulerProcess, SocketAddr) {
    for _ in 0..5 {
        let addr = free_addr();
        let metrics_addr = addr.to_string();
        let mut scheduler = h.spawn_with(&[("METRICS_ADDR", metrics_addr.as_str())]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while scheduler.is_running() && tokio::time::Instant::now() < deadline {
            if scrape(addr).await.is_some() && scheduler.is_running() {
                return (scheduler, addr);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("no scheduler served /metrics");
}

/// `scheduler_leader` as `addr` serves it now.
async fn leader_gauge(addr: SocketAddr) -> Option<f64> {
    series(&scrape(addr).await?, "scheduler_leader")
}

#[tokio::test]
async fn the_leader_says_so_and_counts_its_ticks_per_entry_the_follower_counts_none() {
    let h = Harness::new(&[
        ("REMINDERS_CRON", EVERY_SECOND),
        ("REPORT_CRON", YEARLY),
        ("SWEEP_CRON", YEARLY),
        ("RETENTION_CRON", YEARLY),
    ])
    .await;
    let (first, first_addr) = scheduler_with_metrics(&h).await;
    let leader = h.wait_for_leader(Duration::from_secs(20)).await;
    assert_eq!(pid_of(&leader), first.pid(), "the only scheduler leads");
    let (_second, second_addr) = scheduler_with_metrics(&h).await;

    let fired = r#"scheduler_ticks_total{schedule="reminders",outcome="fired"}"#;
    wait_until(
        "the leader counted three reminder ticks",
        Duration::from_secs(20),
        || async {
            scrape(first_addr)
                .await
                .and_then(|text| series(&text, fired))
                .is_some_and(|n| n >= 3.0)
        },
    )
    .await;
    let text = scrape(first_addr).await.unwrap();
    assert_eq!(series(&text, "scheduler_leader"), Some(1.0), "{text}");
    let counted = series(&text, fired).unwrap();
    let runs = h.runs("reminders").await.len() as f64;
    assert!(
        counted <= runs,
        "{counted} ticks counted but only {runs} runs recorded"
    );

    wait_until(
        "the follower reports that it does not lead",
        Duration::from_secs(10),
        || async { leader_gauge(second_addr).await == Some(0.0) },
    )
    .await;
    let follower = scrape(second_addr).await.unwrap();
    assert_eq!(series(&follower, fired), None, "{follower}");
}
