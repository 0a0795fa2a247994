//! The outbox relay: moves due outbox rows to their Redis queues.
//!
//! Woken at once by `NOTIFY orderly_outbox` (sent when a transaction that enqueued commits),
//! and otherwise at the next row's `run_at` or after `poll` at the latest. Several relays
//! (one per worker process) are safe: rows are claimed with `FOR UPDATE SKIP LOCKED`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use orderly_shared::jobs::{Envelope, Queue, outbox};
use sea_orm::DatabaseConnection;
use sea_orm::sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use crate::transport::Transport;

/// Relay tuning.
#[derive(Debug, Clone, Copy)]
pub struct RelaySettings {
    /// Rows claimed per round trip.
    pub batch: u64,
    /// How long a pushed job may go without a recorded end before it is pushed again.
    pub lease: Duration,
    /// The longest sleep when nothing wakes the relay.
    pub poll: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch: 500,
            lease: Duration::from_secs(300),
            poll: Duration::from_secs(1),
        }
    }
}

/// Runs the relay until `stop` is cancelled.
pub async fn run(
    db: DatabaseConnection,
    transport: Arc<dyn Transport>,
    settings: RelaySettings,
    stop: CancellationToken,
) {
    let mut listener = listen(&db).await;
    loop {
        let pushed = match relay_once(&db, transport.as_ref(), &settings).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "outbox relay round failed; retrying shortly");
                0
            }
        };
        if pushed as u64 >= settings.batch {
            continue;
        }
        let wait = match outbox::next_due(&db).await {
            Ok(Some(at)) => (at - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(settings.poll),
            _ => settings.poll,
        };
        if wait.is_zero() && pushed > 0 {
            continue;
        }
        let wait = wait.max(Duration::from_millis(5));
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
            woken = notified(&mut listener) => {
                if !woken {
                    listener = listen(&db).await;
                }
            }
        }
    }
    tracing::info!("outbox relay stopped");
}

/// One round: claim due rows, push them, hand them back if the push fails.
pub async fn relay_once(
    db: &DatabaseConnection,
    transport: &dyn Transport,
    settings: &RelaySettings,
) -> anyhow::Result<usize> {
    let claimed = outbox::claim_due(db, settings.batch, settings.lease).await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let count = claimed.len();
    let mut by_queue: BTreeMap<&'static str, (Queue, Vec<Envelope>)> = BTreeMap::new();
    for c in claimed {
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
        metrics::counter!("outbox_relayed_total", "queue" => queue.as_str())
            .increment(envelopes.len() as u64);
    }
    Ok(count)
}

async fn listen(db: &DatabaseConnection) -> Option<PgListener> {
    let pool = db.get_postgres_connection_pool();
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot LISTEN for outbox inserts; polling only");
            return None;
        }
    };
    match listener.listen("orderly_outbox").await {
        Ok(()) => Some(listener),
        Err(e) => {
            tracing::warn!(error = %e, "cannot LISTEN for outbox inserts; polling only");
            None
        }
    }
}

/// Waits for a notification; `false` if the listener is gone (then it is rebuilt).
async fn notified(listener: &mut Option<PgListener>) -> bool {
    match listener {
        Some(l) => l.recv().await.is_ok(),
        None => std::future::pending().await,
    }
}
