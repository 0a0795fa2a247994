//! The leader: one replica at a time fires the table's ticks, under the `scheduler` row of
//! `leases` (PostgreSQL's clock, a fencing token that grows with each change of leader).
//!
//! Every replica asks for the lease every third of its length; the holder's ask renews it.
//! A leader that cannot renew (a partition, PostgreSQL down) stops firing once its lease has
//! run out by its own clock, and every tick it fires is checked against the lease in the
//! tick's own transaction, so a stale leader fires nothing whatever its clock says. A
//! leader that dies is replaced within a lease and a third; one that stops gives the lease
//! up at once. Each round, the leader fires what is due since the latest recorded tick of
//! each entry ([`catch_up`]), so a new leader first makes up for what was missed.

use std::time::Duration;

use chrono::{DateTime, Utc};
use orderly_core::leases;
use orderly_jobs::schedules::{LEASE, Table};
use sea_orm::DatabaseConnection;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::catch_up;
use crate::record::{self, Fence, Fired};

/// A tick fired later than this after its time is logged as caught up.
const LATE: chrono::Duration = chrono::Duration::seconds(60);

/// The lease as this replica holds it.
#[derive(Debug, Clone, Copy)]
struct Lead {
    token: i64,
    /// When it runs out unless renewed, by this process's clock (counted from before the
    /// renewal was asked for).
    until: Instant,
}

/// Leads or stands by until `stop`, firing ticks while leading; gives the lease up on the
/// way out.
pub async fn run(
    db: DatabaseConnection,
    table: Table,
    holder: String,
    lease: Duration,
    stop: CancellationToken,
) {
    let every = (lease / 3).max(Duration::from_millis(100));
    let mut lead: Option<Lead> = None;
    loop {
        lead = renew(&db, &holder, lease, lead).await;
        let mut wait = every;
        if let Some(Lead { token, .. }) = lead {
            let fence = Fence {
                holder: &holder,
                token,
            };
            match round(&db, &table, fence).await {
                Ok(Some(next_tick)) => wait = wait.min(next_tick),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "scheduler round failed; retrying")
                }
            }
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
    if lead.is_some() {
        match leases::release(&db, LEASE, &holder).await {
            Ok(()) => tracing::info!("gave the scheduler lease up"),
            Err(e) => tracing::warn!(error = %e, "cannot give the scheduler lease up"),
        }
    }
}

/// Takes or renews the lease; returns it while this replica holds it.
async fn renew(
    db: &DatabaseConnection,
    holder: &str,
    lease: Duration,
    lead: Option<Lead>,
) -> Option<Lead> {
    let asked = Instant::now();
    let lead = renewed(db, holder, lease, lead, asked).await;
    metrics::gauge!("scheduler_leader").set(if lead.is_some() { 1.0 } else { 0.0 });
    lead
}

async fn renewed(
    db: &DatabaseConnection,
    holder: &str,
    lease: Duration,
    lead: Option<Lead>,
    asked: Instant,
) -> Option<Lead> {
    match leases::acquire(db, LEASE, holder, lease).await {
        Ok(Some(token)) => {
            if lead.is_none_or(|l| l.token != token) {
                tracing::info!(
                    lease.token = token,
                    lease_s = lease.as_secs(),
                    "leading the scheduler"
                );
            }
            Some(Lead {
                token,
                until: asked + lease,
            })
        }
        Ok(None) => {
            if lead.is_some() {
                tracing::warn!("another scheduler holds the lease; standing by");
            }
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot take or renew the scheduler lease");
            match lead {
                Some(l) if Instant::now() < l.until => Some(l),
                Some(_) => {
                    tracing::warn!("the scheduler lease ran out unrenewed; standing by");
                    None
                }
                None => None,
            }
        }
    }
}

/// One round of the leader: fires every due tick, then gives ended runs their outcome.
/// Returns how long until the table's next tick.
pub async fn round(
    db: &DatabaseConnection,
    table: &Table,
    fence: Fence<'_>,
) -> anyhow::Result<Option<Duration>> {
    use anyhow::Context as _;
    let (now, latest) = record::now_and_latest(db)
        .await
        .context("reading the latest runs")?;
    for scheduled in table.entries() {
        let entry = scheduled.entry;
        let last = latest.get(&entry).copied();
        for tick in catch_up::due(scheduled, last, now, table.report_catch_up_days) {
            let job = table.job_for_tick(entry, tick)?;
            let fired = record::fire(db, fence, entry, tick, &job)
                .await
                .with_context(|| format!("firing {} at {tick}", entry.name()))?;
            match fired {
                Fired::New { job_new } => {
                    metrics::counter!("scheduler_ticks_total", "schedule" => entry.name(), "outcome" => "fired").increment(1);
                    log_fired(entry.name(), tick, now, &job.task_id, job_new);
                }
                Fired::Before => {
                    metrics::counter!("scheduler_ticks_total", "schedule" => entry.name(), "outcome" => "fired_before").increment(1);
                }
                Fired::NotLeader => {
                    tracing::warn!("no longer the scheduler's leader; fired nothing");
                    return Ok(None);
                }
            }
        }
    }
    record::settle(db).await.context("settling runs")?;
    let next = table
        .entries()
        .iter()
        .filter_map(|s| s.next_after(now))
        .min();
    // A few milliseconds past the tick, so that PostgreSQL's clock has reached it.
    Ok(next.map(|t| (t - now).to_std().unwrap_or_default() + Duration::from_millis(5)))
}

fn log_fired(name: &str, tick: DateTime<Utc>, now: DateTime<Utc>, task_id: &str, job_new: bool) {
    let late_s = (now - tick).num_seconds();
    if now - tick > LATE {
        tracing::info!(schedule.name = name, schedule.tick = %tick, late_s, job.task_id = task_id, job.new = job_new, "fired a missed tick");
    } else {
        tracing::debug!(schedule.name = name, schedule.tick = %tick, job.task_id = task_id, job.new = job_new, "fired");
    }
}
