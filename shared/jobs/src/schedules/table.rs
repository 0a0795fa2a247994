//! The cron table: every entry of `orderly-scheduler` with its expression and time zone
//! from the settings, and the one job each of its ticks enqueues.

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use chrono_tz::Tz;
use sea_orm::DbErr;
use uuid::Uuid;

use super::ticks;
use crate::outbox::NewJob;
use crate::{DailyReport, Job, ReconcilePayments, Reminders, Retention, Sweep};
use orderly_core::Settings;

/// An entry of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entry {
    /// The previous day's report.
    DailyReport,
    /// Reminders before listings start.
    Reminders,
    /// The safety net behind the delayed expiry jobs.
    Sweep,
    /// Deleting what is past its keeping.
    Retention,
    /// Bookings compared with the payment provider.
    ReconcilePayments,
}

impl Entry {
    /// Every entry, in the order they are shown.
    pub const ALL: [Entry; 5] = [
        Entry::DailyReport,
        Entry::Reminders,
        Entry::Sweep,
        Entry::Retention,
        Entry::ReconcilePayments,
    ];

    /// Its name, as stored in `schedule_runs` and typed on the command line: the name of
    /// the job its ticks enqueue.
    pub const fn name(self) -> &'static str {
        match self {
            Entry::DailyReport => DailyReport::NAME,
            Entry::Reminders => Reminders::NAME,
            Entry::Sweep => Sweep::NAME,
            Entry::Retention => Retention::NAME,
            Entry::ReconcilePayments => ReconcilePayments::NAME,
        }
    }

    /// The entry called `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    /// What its job does, in a line.
    pub const fn about(self) -> &'static str {
        match self {
            Entry::DailyReport => {
                "the previous day's report (in the report's time zone), stored and e-mailed to ADMIN_EMAILS"
            }
            Entry::Reminders => {
                "one reminder e-mail and SMS per confirmed or paid booking whose listing starts within REMINDER_LEAD_HOURS"
            }
            Entry::Sweep => {
                "expires unpaid bookings whose expiry job was lost; reports bookings stuck confirmed"
            }
            Entry::Retention => {
                "deletes finished jobs, expired idempotency keys and old webhook events, in batches"
            }
            Entry::ReconcilePayments => {
                "compares bookings with the payment provider and repairs what disagrees (refunds owed, lost captures, dashboard refunds)"
            }
        }
    }
}

/// One entry as configured: its expression (seconds first) read in its time zone.
#[derive(Debug, Clone)]
pub struct Scheduled {
    /// Which entry.
    pub entry: Entry,
    /// Its cron expression.
    pub expression: cron::Schedule,
    /// The time zone its expression is read in.
    pub tz: Tz,
}

impl Scheduled {
    /// Its first tick strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        ticks::next_after(&self.expression, self.tz, after)
    }

    /// Its next `n` ticks after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        std::iter::successors(self.next_after(after), |&t| self.next_after(t))
            .take(n)
            .collect()
    }
}

/// The whole table, built from the settings.
#[derive(Debug, Clone)]
pub struct Table {
    daily_report: Scheduled,
    reminders: Scheduled,
    sweep: Scheduled,
    retention: Scheduled,
    reconcile: Scheduled,
    /// `REMINDER_LEAD_HOURS`, carried by each `reminders` job.
    pub reminder_lead_hours: u32,
    /// `REPORT_CATCH_UP_DAYS`: how far back missed nightly reports are made.
    pub report_catch_up_days: u32,
}

/// A tick's job, ready for the outbox, with its dedup key.
#[derive(Debug, Clone)]
pub struct TickJob {
    /// The outbox row to write.
    pub job: NewJob,
    /// Its dedup key, kept with the run.
    pub task_id: String,
    /// The payload, for people (logs, the command line).
    pub shown: String,
}

impl TickJob {
    fn of<J: Job + std::fmt::Debug>(job: &J) -> Result<Self, DbErr> {
        Ok(Self {
            job: NewJob::of(job, None, None)?,
            task_id: job.dedup_key(),
            shown: format!("{job:?}"),
        })
    }
}

impl Table {
    /// The table the settings describe.
    pub fn from_settings(settings: &Settings) -> Self {
        let s = &settings.schedules;
        let scheduled = |entry, expression: &cron::Schedule, tz| Scheduled {
            entry,
            expression: expression.clone(),
            tz,
        };
        Self {
            daily_report: scheduled(
                Entry::DailyReport,
                &settings.report_cron,
                settings.report_tz,
            ),
            reminders: scheduled(Entry::Reminders, &s.reminders.expression, s.reminders.tz),
            sweep: scheduled(Entry::Sweep, &s.sweep.expression, s.sweep.tz),
            retention: scheduled(Entry::Retention, &s.retention.expression, s.retention.tz),
            reconcile: scheduled(
                Entry::ReconcilePayments,
                &s.reconcile.expression,
                s.reconcile.tz,
            ),
            reminder_lead_hours: s.reminder_lead_hours,
            report_catch_up_days: s.report_catch_up_days,
        }
    }

    /// Every entry, in [`Entry::ALL`]'s order.
    pub fn entries(&self) -> [&Scheduled; 5] {
        Entry::ALL.map(|e| self.get(e))
    }

    /// One entry.
    pub fn get(&self, entry: Entry) -> &Scheduled {
        match entry {
            Entry::DailyReport => &self.daily_report,
            Entry::Reminders => &self.reminders,
            Entry::Sweep => &self.sweep,
            Entry::Retention => &self.retention,
            Entry::ReconcilePayments => &self.reconcile,
        }
    }

    /// The day a report tick at `tick` reports: the day before the tick's, in the report's
    /// time zone (a 23- or 25-hour day is one day all the same).
    pub fn report_date(&self, tick: DateTime<Utc>) -> NaiveDate {
        let day = tick.with_timezone(&self.daily_report.tz).date_naive();
        day.pred_opt().unwrap_or(day)
    }

    /// The one job a tick of `entry` enqueues. Its key is derived from the tick (from the
    /// reported day for the report), so firing the same tick twice yields one job.
    pub fn job_for_tick(&self, entry: Entry, tick: DateTime<Utc>) -> Result<TickJob, DbErr> {
        match entry {
            Entry::DailyReport => TickJob::of(&DailyReport {
                date: self.report_date(tick),
                request: None,
            }),
            Entry::Reminders => TickJob::of(&Reminders {
                tick,
                lead_hours: self.reminder_lead_hours,
            }),
            Entry::Sweep => TickJob::of(&Sweep { tick }),
            Entry::Retention => TickJob::of(&Retention { tick }),
            Entry::ReconcilePayments => TickJob::of(&ReconcilePayments { tick }),
        }
    }

    /// The job an operator asks for now (`run-now`): for the report, the report of `date`
    /// (by default the day before `now`), recomputed even if it was made; for the others,
    /// a tick at `now`.
    pub fn job_on_demand(
        &self,
        entry: Entry,
        now: DateTime<Utc>,
        date: Option<NaiveDate>,
    ) -> Result<TickJob, DbErr> {
        match entry {
            Entry::DailyReport => TickJob::of(&DailyReport {
                date: date.unwrap_or_else(|| self.report_date(now)),
                request: Some(Uuid::new_v4()),
            }),
            _ => self.job_for_tick(entry, now.trunc_subsecs(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn table(vars: &[(&str, &str)]) -> Table {
        let mut map = HashMap::from([
            (
                "DATABASE_URL".to_owned(),
                "postgres://u@127.0.0.1/db".to_owned(),
            ),
            ("REDIS_URL".to_owned(), "redis://127.0.0.1".to_owned()),
        ]);
        map.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Table::from_settings(&Settings::from_map(&map).unwrap())
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn each_entry_reads_its_own_variables() {
        let t = table(&[
            ("REPORT_TZ", "Europe/Paris"),
            ("SWEEP_CRON", "*/2 * * * * *"),
            ("RETENTION_TZ", "America/New_York"),
        ]);
        assert_eq!(t.get(Entry::DailyReport).tz, chrono_tz::Europe::Paris);
        assert_eq!(t.get(Entry::Sweep).expression.source(), "*/2 * * * * *");
        assert_eq!(t.get(Entry::Retention).tz, chrono_tz::America::New_York);
        assert_eq!(t.get(Entry::Reminders).tz, chrono_tz::UTC);
        for entry in Entry::ALL {
            assert_eq!(t.get(entry).entry, entry);
            assert_eq!(Entry::parse(entry.name()), Some(entry));
        }
    }

    #[test]
    fn a_report_tick_reports_the_day_before_in_the_report_time_zone() {
        let t = table(&[("REPORT_TZ", "America/New_York")]);
        // 01:00 UTC on the 21st is still the 20th in New York: the report is the 19th's.
        let job = t
            .job_for_tick(Entry::DailyReport, utc("2026-11-21T01:00:00Z"))
            .unwrap();
        assert_eq!(job.task_id, "daily_report:2026-11-19");
        let spring = t
            .get(Entry::DailyReport)
            .next_after(utc("2026-03-07T12:00:00Z"))
            .unwrap();
        assert_eq!(spring, utc("2026-03-08T07:00:00Z"));
        assert_eq!(t.report_date(spring).to_string(), "2026-03-07");
    }

    #[test]
    fn tick_jobs_are_keyed_by_their_tick_and_on_demand_reports_by_a_new_request() {
        let t = table(&[]);
        let tick = utc("2026-11-21T10:15:00Z");
        let reminders = t.job_for_tick(Entry::Reminders, tick).unwrap();
        assert_eq!(reminders.task_id, "reminders:2026-11-21T10:15:00Z");
        assert!(
            reminders.shown.contains("lead_hours: 24"),
            "{}",
            reminders.shown
        );
        let date = NaiveDate::from_ymd_opt(2026, 11, 1);
        let first = t.job_on_demand(Entry::DailyReport, tick, date).unwrap();
        let second = t.job_on_demand(Entry::DailyReport, tick, date).unwrap();
        assert!(first.task_id.starts_with("daily_report:2026-11-01:"));
        assert_ne!(first.task_id, second.task_id);
    }
}
