//! `orderly-scheduler list` and `orderly-scheduler run-now`.

use chrono::{Duration, Utc};

use crate::harness::Harness;

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn list_shows_each_entry_with_its_time_zone_next_runs_and_last_run() {
    let h = Harness::new(&[
        ("REPORT_TZ", "Europe/Paris"),
        ("SWEEP_CRON", "0 */5 * * * *"),
    ])
    .await;
    let tick = Utc::now() - Duration::hours(1);
    h.seed_run("retention", tick).await;
    let output = h.run(&["list"]);
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    for expected in [
        "daily_report:",
        "0 0 2 * * *",
        "Europe/Paris",
        "reminders:",
        "0 */15 * * * *",
        "sweep:",
        "0 */5 * * * *",
        "retention:",
        "an-earlier-scheduler",
        "done",
        "leader: none",
    ] {
        assert!(
            text.contains(expected),
            "`{expected}` missing from:\n{text}"
        );
    }
    // Three next runs per entry, and "never" for the entries that never ran.
    assert_eq!(text.matches("next runs").count(), 5, "{text}");
    assert_eq!(text.matches("last run    never").count(), 4, "{text}");
    // The report's next runs are shown in its zone.
    assert!(text.contains("02:00:00 CE"), "{text}");
}

#[tokio::test]
async fn run_now_enqueues_a_report_of_the_given_day_that_is_made_again_each_time() {
    let h = Harness::new(&[]).await;
    for _ in 0..2 {
        let output = h.run(&["run-now", "daily_report", "--date", "2026-11-20"]);
        assert!(output.status.success(), "{output:?}");
        let text = stdout(&output);
        assert!(
            text.starts_with(
                "enqueued daily_report: DailyReport { date: 2026-11-20, request: Some("
            ),
            "{text}"
        );
    }
    let jobs = h.jobs("daily_report").await;
    assert_eq!(jobs.len(), 2);
    assert!(
        jobs.iter()
            .all(|k| k.starts_with("daily_report:2026-11-20:")),
        "{jobs:?}"
    );
    // A manual run is no tick: the table's record is untouched.
    assert!(h.runs("daily_report").await.is_empty());

    let output = h.run(&["run-now", "sweep"]);
    assert!(output.status.success(), "{output:?}");
    assert!(stdout(&output).starts_with("enqueued sweep: Sweep { tick: "));
    assert_eq!(h.jobs("sweep").await.len(), 1);
}

#[tokio::test]
async fn run_now_refuses_an_unknown_entry_and_a_date_for_another_entry() {
    let h = Harness::new(&[]).await;
    let output = h.run(&["run-now", "coffee"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("unknown entry `coffee`")
            && err.contains("daily_report, reminders, sweep, retention"),
        "{err}"
    );
    let output = h.run(&["run-now", "reminders", "--date", "2026-11-20"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--date is for daily_report only"));
    let output = h.run(&["run-now", "daily_report", "--date", "20/11/2026"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(h.jobs("daily_report").await.is_empty());
    assert!(h.jobs("reminders").await.is_empty());
}
