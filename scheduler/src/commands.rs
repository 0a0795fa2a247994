//! The operator's commands: `list` (the table, its next runs, what ran last, who leads) and
//! `run-now` (an entry's job enqueued at once).

use std::io::Write;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use orderly_db::sql::stmt;
use orderly_jobs::schedules::{self, Entry, Table};
use orderly_jobs::{outbox, wake};
use sea_orm::{ConnectionTrait, DatabaseConnection};

/// How many next runs `list` shows per entry.
const NEXT_RUNS: usize = 3;

/// Writes the table: per entry its expression, time zone, next runs (in its zone) and last
/// run; then the leader.
pub async fn list(
    db: &DatabaseConnection,
    table: &Table,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let now = db_now(db).await?;
    let last = schedules::last_runs(db)
        .await
        .context("reading the last runs")?;
    for scheduled in table.entries() {
        let entry = scheduled.entry;
        writeln!(out, "{}: {}", entry.name(), entry.about())?;
        writeln!(out, "  expression  {}", scheduled.expression.source())?;
        writeln!(out, "  time zone   {}", scheduled.tz)?;
        let next: Vec<String> = scheduled
            .upcoming(now, NEXT_RUNS)
            .into_iter()
            .map(|t| local(t, scheduled.tz))
            .collect();
        writeln!(out, "  next runs   {}", next.join(", "))?;
        match last.get(&entry) {
            Some(run) => {
                let mut line = format!(
                    "{} ({}), {}",
                    local(run.scheduled_for.to_utc(), scheduled.tz),
                    run.leader,
                    run.status.as_str()
                );
                if let Some(finished) = run.finished_at {
                    line.push_str(&format!(" at {}", local(finished.to_utc(), scheduled.tz)));
                }
                if let Some(error) = &run.error {
                    line.push_str(&format!(": {error}"));
                }
                writeln!(out, "  last run    {line}")?;
            }
            None => writeln!(out, "  last run    never")?,
        }
    }
    match schedules::leader(db).await.context("reading the lease")? {
        Some(l) => writeln!(
            out,
            "leader: {} (token {}, lease until {})",
            l.holder,
            l.token,
            l.lease_until.to_rfc3339()
        )?,
        None => writeln!(out, "leader: none (no scheduler is running)")?,
    }
    Ok(())
}

/// Enqueues `entry`'s job now (for the report, `date`'s, by default yesterday's in the
/// report's time zone, recomputed even if it was made) and says what it enqueued.
pub async fn run_now(
    db: &DatabaseConnection,
    table: &Table,
    entry: Entry,
    date: Option<NaiveDate>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    if date.is_some() && entry != Entry::DailyReport {
        anyhow::bail!("--date is for daily_report only");
    }
    let now = db_now(db).await?;
    let job = table.job_on_demand(entry, now, date)?;
    let new = outbox::enqueue_many(db, std::slice::from_ref(&job.job))
        .await
        .context("enqueueing")?
        == 1;
    if new {
        wake::relays_now(db).await.context("waking the relays")?;
    }
    let what = if new { "enqueued" } else { "already enqueued" };
    writeln!(
        out,
        "{what} {}: {} (job {})",
        entry.name(),
        job.shown,
        job.task_id
    )?;
    Ok(())
}

/// Parses an entry's name as typed on the command line.
pub fn parse_entry(name: &str) -> Result<Entry, String> {
    Entry::parse(name).ok_or_else(|| {
        let names: Vec<&str> = Entry::ALL.iter().map(|e| e.name()).collect();
        format!(
            "unknown entry `{name}` (expected one of {})",
            names.join(", ")
        )
    })
}

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

async fn db_now(db: &DatabaseConnection) -> anyhow::Result<DateTime<Utc>> {
    let row = db
        .query_one_raw(stmt(&NOW, []))
        .await
        .context("reading PostgreSQL's clock")?
        .context("no clock from PostgreSQL")?;
    Ok(row.try_get("", "now")?)
}

orderly_db::sql! {
    /// PostgreSQL's clock.
    NOW = "SELECT now() AS now";
}
