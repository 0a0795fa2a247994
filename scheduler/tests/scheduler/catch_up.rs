//! A scheduler back after days down makes each missed nightly report once, and runs the
//! other entries once, at their latest tick, not once per missed tick.

use std::time::Duration;

use chrono::Utc;
use orderly_jobs::schedules::{Entry, ticks};
use orderly_testing::wait_until;

use crate::harness::Harness;

#[tokio::test]
async fn a_scheduler_back_after_three_days_down_makes_three_reports_once_each() {
    let h = Harness::new(&[
        // The report at its default, 02:00 UTC; the others hourly, so that three days hold
        // 72 of their ticks.
        ("REMINDERS_CRON", "0 0 * * * *"),
        ("SWEEP_CRON", "0 0 * * * *"),
        ("RETENTION_CRON", "0 0 * * * *"),
    ])
    .await;
    let now = Utc::now();
    let down_since = now - chrono::Duration::days(3);
    // Each entry last ran at its latest tick three days ago.
    let mut seeded = Vec::new();
    for scheduled in h.table.entries() {
        let tick = ticks::latest(&scheduled.expression, scheduled.tz, None, down_since).unwrap();
        h.seed_run(scheduled.entry.name(), tick).await;
        seeded.push((scheduled.entry, tick));
    }
    let report = h.table.get(Entry::DailyReport);
    let missed: Vec<_> = ticks::between(&report.expression, report.tz, seeded[0].1, now).collect();
    assert_eq!(missed.len(), 3, "{missed:?}");

    // Two replicas, to make it harder.
    let _first = h.spawn();
    let _second = h.spawn();
    wait_until("every entry ran again", Duration::from_secs(30), || async {
        let mut all = true;
        for entry in Entry::ALL {
            all &= h.runs(entry.name()).await.len() >= 2;
        }
        all && h.runs("daily_report").await.len() >= 4
    })
    .await;

    let runs = h.runs("daily_report").await;
    let fired: Vec<_> = runs[1..].iter().map(|r| r.tick).collect();
    assert_eq!(fired, missed);
    let expected: Vec<String> = missed
        .iter()
        .map(|&t| format!("daily_report:{}", h.table.report_date(t)))
        .collect();
    assert_eq!(h.jobs("daily_report").await, expected);

    for (entry, seed) in &seeded[1..] {
        let scheduled = h.table.get(*entry);
        let latest_at_start =
            ticks::latest(&scheduled.expression, scheduled.tz, None, now).unwrap();
        let runs = h.runs(entry.name()).await;
        // Nothing between the seeded run and the latest tick when the scheduler came back.
        assert_eq!(runs[0].tick, *seed);
        assert!(runs[1].tick >= latest_at_start, "{entry:?}: {runs:?}");
        assert_eq!(
            h.jobs(entry.name()).await.len(),
            runs.len() - 1,
            "{entry:?}"
        );
    }
}
