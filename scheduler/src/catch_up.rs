//! Which ticks are due when the leader looks, from the latest one it recorded: normally the
//! one that just came; after a restart, a take-over or an outage, each missed nightly report
//! (up to `REPORT_CATCH_UP_DAYS` back) and, for the other entries, only the latest missed
//! tick — never a burst of every missed minute.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};
use orderly_jobs::schedules::{Entry, Scheduled, ticks};

/// Most ticks one catch-up fires for an entry (the latest ones).
pub const MOST: usize = 1000;

/// The ticks of `scheduled` to fire at `now`, oldest first, given the latest tick recorded
/// for it (`last`; `None` if it never ran, in which case only the latest tick is due).
pub fn due(
    scheduled: &Scheduled,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    report_catch_up_days: u32,
) -> Vec<DateTime<Utc>> {
    let (expression, tz) = (&scheduled.expression, scheduled.tz);
    match (scheduled.entry, last) {
        (Entry::DailyReport, Some(last)) => {
            let floor = now - Duration::days(i64::from(report_catch_up_days));
            let mut missed = VecDeque::new();
            for tick in ticks::between(expression, tz, last.max(floor), now) {
                if missed.len() == MOST {
                    missed.pop_front();
                }
                missed.push_back(tick);
            }
            if missed.is_empty() && last < floor {
                // Down for longer than the window: its latest tick is still due.
                missed.extend(ticks::latest(expression, tz, Some(last), now));
            }
            missed.into()
        }
        _ => ticks::latest(expression, tz, last, now)
            .into_iter()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn entry(entry: Entry, expr: &str, tz: chrono_tz::Tz) -> Scheduled {
        Scheduled {
            entry,
            expression: cron::Schedule::from_str(expr).unwrap(),
            tz,
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn three_days_down_make_three_reports_and_one_of_everything_else() {
        let now = utc("2026-11-20T12:00:00Z");
        let last = Some(utc("2026-11-17T02:00:00Z"));
        let report = entry(Entry::DailyReport, "0 0 2 * * *", chrono_tz::UTC);
        assert_eq!(
            due(&report, last, now, 7),
            [
                utc("2026-11-18T02:00:00Z"),
                utc("2026-11-19T02:00:00Z"),
                utc("2026-11-20T02:00:00Z")
            ]
        );
        let sweep = entry(Entry::Sweep, "0 * * * * *", chrono_tz::UTC);
        assert_eq!(due(&sweep, last, now, 7), [utc("2026-11-20T12:00:00Z")]);
        let reminders = entry(Entry::Reminders, "0 */15 * * * *", chrono_tz::UTC);
        assert_eq!(
            due(&reminders, last, now - Duration::seconds(1), 7),
            [utc("2026-11-20T11:45:00Z")]
        );
    }

    #[test]
    fn missed_reports_go_back_no_further_than_the_window() {
        let now = utc("2026-11-20T12:00:00Z");
        let report = entry(Entry::DailyReport, "0 0 2 * * *", chrono_tz::UTC);
        let got = due(&report, Some(utc("2026-10-01T02:00:00Z")), now, 7);
        assert_eq!(got.len(), 7);
        assert_eq!(got[0], utc("2026-11-14T02:00:00Z"));
        let got = due(&report, Some(utc("2026-10-01T02:00:00Z")), now, 1);
        assert_eq!(got, [utc("2026-11-20T02:00:00Z")]);
    }

    #[test]
    fn nothing_is_due_between_ticks_and_a_first_start_runs_only_the_latest() {
        let now = utc("2026-11-20T12:00:00Z");
        let report = entry(Entry::DailyReport, "0 0 2 * * *", chrono_tz::UTC);
        assert!(due(&report, Some(utc("2026-11-20T02:00:00Z")), now, 7).is_empty());
        assert_eq!(due(&report, None, now, 7), [utc("2026-11-20T02:00:00Z")]);
        let sweep = entry(Entry::Sweep, "0 * * * * *", chrono_tz::UTC);
        assert!(due(&sweep, Some(now), now + Duration::seconds(59), 7).is_empty());
    }

    #[test]
    fn a_daylight_saving_day_is_caught_up_once() {
        let paris = chrono_tz::Europe::Paris;
        let report = entry(Entry::DailyReport, "0 0 2 * * *", paris);
        // Down from the night of the 28th to the 31st of March 2026 (spring forward on the 29th).
        let got = due(
            &report,
            Some(utc("2026-03-28T01:00:00Z")),
            utc("2026-03-31T12:00:00Z"),
            7,
        );
        assert_eq!(
            got,
            [
                utc("2026-03-29T01:00:00Z"),
                utc("2026-03-30T00:00:00Z"),
                utc("2026-03-31T00:00:00Z")
            ]
        );
    }
}
