//! The outbox relay: moves due outbox rows into their Redis queues, each only as far ahead
//! of its workers as its window (`outbox::Window`), and refills a window as runs start.
//!
//! Woken at once by `NOTIFY orderly_outbox` (sent just after a transaction that enqueued
//! commits: `orderly_jobs::wake`) and by this process's runs starting; otherwise
//! at the next row's `run_at` (by the database's clock) or after `poll` at the latest. A
//! lost `LISTEN` connection is rebuilt.
//! Several relays (one per worker process) are safe: rows are claimed with `FOR UPDATE
//! SKIP LOCKED`, and each window is bounded by the number of relays claiming at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orderly_jobs::outbox::{Cursor, Window};
use orderly_jobs::{Envelope, Queue, outbox, wake};
use sea_orm::DatabaseConnection;
use sea_orm::sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::transport::Transport;

/// Relay tuning.
#[derive(Debug, Clone, Copy)]
pub struct RelaySettings {
    /// Rows claimed per queue per round trip.
    pub batch: u64,
    /// How far each queue is filled ahead of its workers.
    pub window: Window,
    /// The longest sleep when nothing wakes the relay.
    pub poll: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch: 500,
            window: Window::default(),
            poll: Duration::from_secs(1),
        }
    }
}

/// The longest wait for a full window to drain before claiming again, when nothing in this
/// process signals that runs started (their workers are in other processes).
const FULL_WINDOW_POLL: Duration = Duration::from_millis(100);
/// The shortest time between the starts of two rounds: a burst of commits is served by
/// one round instead of one round each, at the cost of at most this much delay.
const ROUND_SPACING: Duration = Duration::from_millis(5);
/// How often a round searches every queue from its start, not from its cursor.
const FULL_SCAN_EVERY: Duration = Duration::from_secs(1);
/// How often a lost `LISTEN` is tried again.
const RELISTEN_EVERY: Duration = Duration::from_secs(2);

/// Runs the relay until `stop` is cancelled; `started` is notified when runs start.
pub async fn run(
    db: DatabaseConnection,
    transport: Arc<dyn Transport>,
    settings: RelaySettings,
    started: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut listener = listen(&db).await;
    let mut listened_at = Instant::now();
    let mut full_wait = Duration::from_millis(5);
    let mut cursors: Vec<Option<Cursor>> = Vec::new();
    let mut full_scan_at = Instant::now();
    loop {
        if listener.is_none() && listened_at.elapsed() >= RELISTEN_EVERY {
            listener = listen(&db).await;
            listened_at = Instant::now();
        }
        let round_started = Instant::now();
        if full_scan_at.elapsed() >= FULL_SCAN_EVERY {
            // Rows can turn up behind a cursor (a transaction that committed late).
            cursors.clear();
            full_scan_at = Instant::now();
        }
        let (pushed, next_due) = match relay_once(&db, transport.as_ref(), &settings, &cursors)
            .await
        {
            Ok(round) => {
                // Each queue's search resumes after the last row it took.
                cursors.resize(round.cursors.len(), None);
                for (cursor, last) in cursors.iter_mut().zip(round.cursors) {
                    if last.is_some() {
                        *cursor = last;
                    }
                }
                (round.pushed, round.next_due)
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "outbox relay round failed; retrying shortly");
                // Its rows may have been handed back behind the cursors.
                cursors.clear();
                (0, Some(settings.poll))
            }
        };
        if pushed as u64 >= settings.batch {
            continue;
        }
        let wait = match next_due {
            // Due rows that found no room: their windows are full until runs start.
            Some(due) if due.is_zero() && pushed == 0 => {
                full_wait = (full_wait * 2).min(FULL_WINDOW_POLL);
                full_wait
            }
            Some(due) if due.is_zero() => continue,
            Some(due) => due.min(settings.poll),
            None => settings.poll,
        };
        if pushed > 0 {
            full_wait = Duration::from_millis(5);
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {}
            () = started.notified() => {}
            woken = notified(&mut listener) => {
                if !woken {
                    tracing::warn!("lost the outbox LISTEN connection; rebuilding it");
                    listener = listen(&db).await;
                    listened_at = Instant::now();
                }
            }
        }
        // Under load, commits arrive faster than rounds end: rounds start at most every
        // ROUND_SPACING, and one round serves every notification that arrived by then.
        tokio::time::sleep(ROUND_SPACING.saturating_sub(round_started.elapsed())).await;
        if let Some(l) = listener.as_mut() {
            while let Ok(Ok(Some(_))) = tokio::time::timeout(Duration::ZERO, l.try_recv()).await {}
        }
    }
    tracing::info!("outbox relay stopped");
}

/// What one round did.
#[derive(Debug, Clone)]
pub struct Round {
    /// Rows pushed.
    pub pushed: usize,
    /// When the next unclaimed row falls due (see [`outbox::Claim`]).
    pub next_due: Option<Duration>,
    /// Where each queue's claim stopped (see [`outbox::Claim`]).
    pub cursors: Vec<Option<Cursor>>,
}

/// One round: claim due rows into their windows (each queue's search starting after its
/// cursor in `after`, if any), push them, hand them back if the push fails.
pub async fn relay_once(
    db: &DatabaseConnection,
    transport: &dyn Transport,
    settings: &RelaySettings,
    after: &[Option<Cursor>],
) -> anyhow::Result<Round> {
    let waiting = transport.waiting(&Queue::ALL).await?;
    let claim = outbox::claim_due(db, settings.batch, settings.window, &waiting, after).await?;
    let count = claim.rows.len();
    let mut by_queue: BTreeMap<&'static str, (Queue, Vec<Envelope>)> = BTreeMap::new();
    for c in claim.rows {
        by_queue
            .entry(c.queue.as_str())
            .or_insert_with(|| (c.queue, Vec::new()))
            .1
            .push(c.envelope);
    }
    let mut batches = by_queue.into_values();
    while let Some((queue, envelopes)) = batches.next() {
        if let Err(e) = transport.push(queue, &envelopes).await {
            // Hand back this queue's rows and those of the queues not pushed yet.
            let ids: Vec<_> = std::iter::once(envelopes)
                .chain(batches.map(|(_, rest)| rest))
                .flatten()
                .map(|e| e.outbox_id)
                .collect();
            outbox::unclaim(db, &ids).await?;
            return Err(e.context(format!(
                "pushing to the {} queue ({} jobs handed back)",
                queue.as_str(),
                ids.len()
            )));
        }
        metrics::counter!("relay_pushed_total", "queue" => queue.as_str())
            .increment(envelopes.len() as u64);
    }
    Ok(Round {
        pushed: count,
        next_due: claim.next_due,
        cursors: claim.cursors,
    })
}

async fn listen(db: &DatabaseConnection) -> Option<PgListener> {
    let pool = db.get_postgres_connection_pool();
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot LISTEN for outbox inserts; polling until it can");
            return None;
        }
    };
    match listener.listen(wake::CHANNEL).await {
        Ok(()) => Some(listener),
        Err(e) => {
            tracing::warn!(error = %e, "cannot LISTEN for outbox inserts; polling until it can");
            None
        }
    }
}

/// Waits for a notification; `false` if the listener is gone (then it is rebuilt).
async fn notified(listener: &mut Option<PgListener>) -> bool {
    match listener {
        Some(l) => match l.try_recv().await {
            Ok(Some(_)) => true,
            // The connection dropped: sqlx reconnects and re-LISTENs on the next call, but
            // a notification may have been missed, so the caller relays at once.
            Ok(None) => true,
            Err(_) => {
                *listener = None;
                false
            }
        },
        None => std::future::pending().await,
    }
}
