//! Several schedulers over one database: one leads, each tick is fired once, a killed
//! leader is replaced within its lease by one that makes up what was missed, and a leader
//! that stops hands over at once.

use std::collections::BTreeSet;
use std::time::Duration;

use orderly_testing::wait_until;

use crate::harness::{Harness, Run, pid_of};

const EVERY_2S: &str = "*/2 * * * * *";
const YEARLY: &str = "0 0 0 1 1 *";

fn every_two_seconds(lease_seconds: &'static str) -> [(&'static str, &'static str); 5] {
    [
        ("REPORT_CRON", EVERY_2S),
        ("REMINDERS_CRON", EVERY_2S),
        ("SWEEP_CRON", YEARLY),
        ("RETENTION_CRON", YEARLY),
        ("SCHEDULER_LEASE_SECONDS", lease_seconds),
    ]
}

fn assert_every_tick(runs: &[Run]) {
    for pair in runs.windows(2) {
        assert_eq!(
            pair[1].tick - pair[0].tick,
            chrono::Duration::seconds(2),
            "a tick is missing or repeated: {pair:?}"
        );
    }
}

#[tokio::test]
async fn two_schedulers_fire_each_tick_once_and_the_survivor_takes_over_after_a_kill_9() {
    let h = Harness::new(&every_two_seconds("2")).await;
    let mut first = h.spawn();
    let leader = h.wait_for_leader(Duration::from_secs(20)).await;
    assert_eq!(pid_of(&leader), first.pid());
    let mut second = h.spawn();
    wait_until(
        "six reminders ticks fired",
        Duration::from_secs(30),
        || async { h.runs("reminders").await.len() >= 6 },
    )
    .await;
    let before = h.runs("reminders").await;
    assert!(before.iter().all(|r| r.leader == leader), "{before:?}");
    assert_every_tick(&before);

    first.kill_9();
    let killed = tokio::time::Instant::now();
    wait_until(
        "the other scheduler leads",
        Duration::from_secs(15),
        || async { h.leader().await.is_some_and(|l| l != leader) },
    )
    .await;
    // The dead leader's lease (2 s) runs out, and the survivor asks every 2/3 s.
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "{:?}",
        killed.elapsed()
    );
    let survivor = h.leader().await.unwrap();
    assert_eq!(pid_of(&survivor), second.pid());
    wait_until(
        "the survivor fires three report ticks",
        Duration::from_secs(20),
        || async {
            h.runs("daily_report")
                .await
                .iter()
                .filter(|r| r.leader == survivor)
                .count()
                >= 3
        },
    )
    .await;
    // No tick may land between the reads below (a run and its job commit together, but
    // the runs and the jobs are read one after the other).
    second.kill_9();

    // The report entry makes up every missed tick: none is missing across the hand-over,
    // and each belongs to one leader, the first until the kill, the survivor after.
    let reports = h.runs("daily_report").await;
    assert_every_tick(&reports);
    let leaders: Vec<&str> = reports.iter().map(|r| r.leader.as_str()).collect();
    let handover = leaders.iter().position(|l| *l == survivor).unwrap();
    assert!(leaders[..handover].iter().all(|l| *l == leader));
    assert!(leaders[handover..].iter().all(|l| *l == survivor));
    // A report job per day, however many ticks reported it.
    let days: BTreeSet<String> = reports.iter().filter_map(|r| r.task_id.clone()).collect();
    assert_eq!(
        h.jobs("daily_report").await,
        days.into_iter().collect::<Vec<_>>()
    );

    // Each reminders tick has its one job; the survivor fires every tick from its first on.
    let reminders = h.runs("reminders").await;
    let keys: Vec<String> = reminders.iter().filter_map(|r| r.task_id.clone()).collect();
    let mut jobs = h.jobs("reminders").await;
    jobs.sort();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(jobs, sorted);
    assert_eq!(keys.len(), reminders.len());
    let first_by_survivor = reminders.iter().position(|r| r.leader == survivor).unwrap();
    assert_every_tick(&reminders[first_by_survivor..]);
}

#[tokio::test]
async fn a_scheduler_that_stops_gives_its_lease_up_and_another_leads_at_once() {
    // A 9 s lease: a successor asking every 3 s leads long before the lease would lapse.
    let h = Harness::new(&every_two_seconds("9")).await;
    let mut first = h.spawn();
    let leader = h.wait_for_leader(Duration::from_secs(20)).await;
    let second = h.spawn();
    wait_until("the leader fires", Duration::from_secs(20), || async {
        !h.runs("reminders").await.is_empty()
    })
    .await;
    first.sigterm();
    assert!(first.exited(Duration::from_secs(10)).await.success());
    let stopped = tokio::time::Instant::now();
    wait_until(
        "the other scheduler leads",
        Duration::from_secs(15),
        || async { h.leader().await.is_some_and(|l| l != leader) },
    )
    .await;
    assert!(
        stopped.elapsed() < Duration::from_secs(6),
        "{:?}",
        stopped.elapsed()
    );
    assert_eq!(pid_of(&h.leader().await.unwrap()), second.pid());
}
