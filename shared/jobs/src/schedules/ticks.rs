//! When a cron entry fires: its expression read as wall-clock time in its time zone, with
//! the two days a year that daylight-saving time bends made explicit.
//!
//! The `cron` crate, given a zoned time, skips a wall-clock time that a spring-forward
//! gap removes (a nightly job at 02:30 never runs that day) and fires one that a fall-back
//! repeats twice, out of order. Here, as in Vixie cron:
//!
//! - a time inside a gap fires once, at the end of the gap (02:30 that does not exist fires
//!   at 03:00, the instant the clocks jump), so a daily job still runs that day;
//! - a repeated time fires once, at its first occurrence, unless the entry fires every
//!   hour, in which case it fires in both passes of the repeated hour, as real time goes on.
//!
//! Ticks are instants (UTC), strictly increasing.

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use cron::{Schedule, TimeUnitSpec};

/// More than any time zone's daylight-saving shift.
const SHIFT: Duration = Duration::hours(3);

/// The first tick of `schedule` in `tz` strictly after `after`.
pub fn next_after(schedule: &Schedule, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = |t: DateTime<Utc>| t.with_timezone(&tz).naive_local();
    let every_hour = schedule.hours().is_all();
    // Near a shift, wall-clock times before `after`'s can still be ahead of it in real time.
    let start = local(after) - margin(tz, after);
    let mut best: Option<DateTime<Utc>> = None;
    for candidate in schedule.after(&start.and_utc()) {
        let naive = candidate.naive_utc();
        if let Some(best) = best
            && naive > local(best) + margin(tz, best)
        {
            break;
        }
        for tick in resolve(tz, naive, every_hour).into_iter().flatten() {
            if tick > after && best.is_none_or(|b| tick < b) {
                best = Some(tick);
            }
        }
    }
    best
}

/// The ticks in `(from, to]`, oldest first.
pub fn between(
    schedule: &Schedule,
    tz: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> impl Iterator<Item = DateTime<Utc>> {
    std::iter::successors(next_after(schedule, tz, from), move |&t| {
        next_after(schedule, tz, t)
    })
    .take_while(move |&t| t <= to)
}

/// The latest tick at or before `at` and strictly after `since` (any time, if `None`).
pub fn latest(
    schedule: &Schedule,
    tz: Tz,
    since: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    // Searched from a little before `at`, then further back, so a frequent entry is not
    // walked from `since` tick by tick.
    for days in [0, 1, 32, 400, 3700] {
        let window = Duration::days(days).max(Duration::hours(1));
        let from = since.map_or(at - window, |s| s.max(at - window));
        if let Some(tick) = between(schedule, tz, from, at).last() {
            return Some(tick);
        }
        if Some(from) == since {
            return None;
        }
    }
    None
}

/// How far before a time wall-clock candidates are looked at: [`SHIFT`] near a change of
/// the zone's offset, nothing elsewhere.
fn margin(tz: Tz, t: DateTime<Utc>) -> Duration {
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    if offset(t - SHIFT) == offset(t + SHIFT) {
        Duration::zero()
    } else {
        SHIFT
    }
}

/// The instants at which wall-clock time `naive` fires in `tz`.
fn resolve(tz: Tz, naive: NaiveDateTime, every_hour: bool) -> [Option<DateTime<Utc>>; 2] {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => [Some(t.to_utc()), None],
        LocalResult::Ambiguous(first, second) => {
            [Some(first.to_utc()), every_hour.then(|| second.to_utc())]
        }
        LocalResult::None => [gap_end(tz, naive), None],
    }
}

/// The instant the clocks jump over `naive` (inside a gap): the first whole minute after
/// it that exists.
fn gap_end(tz: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    let minute = naive.with_second(0)?.with_nanosecond(0)?;
    (1..=SHIFT.num_minutes()).find_map(|m| {
        tz.from_local_datetime(&(minute + Duration::minutes(m)))
            .earliest()
            .map(|t| t.to_utc())
    })
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use chrono::NaiveDate;

    use super::*;

    fn cron(expr: &str) -> Schedule {
        Schedule::from_str(expr).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    /// The ticks from local midnight of `first` to (before) local midnight after `last`.
    fn ticks(expr: &str, tz: Tz, first: &str, last: &str) -> Vec<DateTime<Utc>> {
        let day = |s: &str| {
            NaiveDate::from_str(s)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
        };
        let from = tz.from_local_datetime(&day(first)).earliest().unwrap();
        let to = tz
            .from_local_datetime(&(day(last) + Duration::days(1)))
            .earliest()
            .unwrap();
        let second = Duration::seconds(1);
        between(
            &cron(expr),
            tz,
            from.to_utc() - second,
            to.to_utc() - second,
        )
        .collect()
    }

    fn local_days(ticks: &[DateTime<Utc>], tz: Tz) -> Vec<String> {
        ticks
            .iter()
            .map(|t| t.with_timezone(&tz).date_naive().to_string())
            .collect()
    }

    #[test]
    fn a_nightly_entry_fires_once_on_each_daylight_saving_day() {
        for (tz, spring, fall) in [
            (chrono_tz::Europe::Paris, "2026-03-29", "2026-10-25"),
            (chrono_tz::America::New_York, "2026-03-08", "2026-11-01"),
        ] {
            for day in [spring, fall] {
                let date = NaiveDate::from_str(day).unwrap();
                let (before, after) = (date.pred_opt().unwrap(), date.succ_opt().unwrap());
                // 02:00 falls in both zones' spring gap, 02:30 too, 01:30 in New York's
                // repeated hour, 02:30 in Paris's.
                for expr in ["0 0 2 * * *", "0 30 2 * * *", "0 30 1 * * *", "0 0 0 * * *"] {
                    let got = ticks(expr, tz, &before.to_string(), &after.to_string());
                    assert_eq!(
                        local_days(&got, tz),
                        [before.to_string(), day.to_string(), after.to_string()],
                        "{expr} in {tz} around {day}: {got:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_time_the_spring_gap_removes_fires_when_the_clocks_jump() {
        let paris = chrono_tz::Europe::Paris;
        let got = ticks("0 30 2 * * *", paris, "2026-03-29", "2026-03-29");
        assert_eq!(got, [utc("2026-03-29T01:00:00Z")]);
        let new_york = chrono_tz::America::New_York;
        let got = ticks("0 0 2 * * *", new_york, "2026-03-08", "2026-03-08");
        assert_eq!(got, [utc("2026-03-08T07:00:00Z")]);
    }

    #[test]
    fn a_repeated_time_fires_at_its_first_occurrence() {
        let paris = chrono_tz::Europe::Paris;
        let got = ticks("0 30 2 * * *", paris, "2026-10-25", "2026-10-25");
        assert_eq!(got, [utc("2026-10-25T00:30:00Z")]);
        let new_york = chrono_tz::America::New_York;
        let got = ticks("0 30 1 * * *", new_york, "2026-11-01", "2026-11-01");
        assert_eq!(got, [utc("2026-11-01T05:30:00Z")]);
    }

    #[test]
    fn a_frequent_entry_keeps_its_pace_in_real_time_across_both_shifts() {
        let paris = chrono_tz::Europe::Paris;
        for (day, hours) in [("2026-03-29", 23), ("2026-10-25", 25)] {
            let got = ticks("0 */15 * * * *", paris, day, day);
            assert_eq!(got.len(), hours * 4, "{day}");
            for pair in got.windows(2) {
                assert_eq!(pair[1] - pair[0], Duration::minutes(15), "{day}: {pair:?}");
            }
        }
        let new_york = chrono_tz::America::New_York;
        let got = ticks("0 * * * * *", new_york, "2026-03-08", "2026-03-08");
        assert_eq!(got.len(), 23 * 60);
        assert!(got.windows(2).all(|p| p[1] - p[0] == Duration::minutes(1)));
    }

    #[test]
    fn ticks_every_two_seconds_in_utc_are_every_two_seconds() {
        let from = utc("2026-11-20T10:00:01Z");
        let got: Vec<_> = between(
            &cron("*/2 * * * * *"),
            chrono_tz::UTC,
            from,
            from + Duration::seconds(10),
        )
        .collect();
        assert_eq!(got.len(), 5);
        assert_eq!(got[0], utc("2026-11-20T10:00:02Z"));
    }

    #[test]
    fn the_latest_tick_is_found_far_back_and_never_before_since() {
        let nightly = cron("0 0 2 * * *");
        let at = utc("2026-11-20T12:00:00Z");
        let utc_tz = chrono_tz::UTC;
        assert_eq!(
            latest(&nightly, utc_tz, None, at),
            Some(utc("2026-11-20T02:00:00Z"))
        );
        assert_eq!(
            latest(&nightly, utc_tz, Some(utc("2026-11-17T02:00:00Z")), at),
            Some(utc("2026-11-20T02:00:00Z"))
        );
        assert_eq!(
            latest(&nightly, utc_tz, Some(utc("2026-11-20T02:00:00Z")), at),
            None
        );
        let yearly = cron("0 0 0 1 1 *");
        assert_eq!(
            latest(&yearly, utc_tz, None, at),
            Some(utc("2026-01-01T00:00:00Z"))
        );
    }
}
