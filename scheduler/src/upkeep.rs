//! Periodic upkeep of the domain's tables, one scheduler at a time (the `upkeep` lease):
//! the sweep that expires unpaid bookings whose `expire_booking` job was lost, and the
//! pruning of expired idempotency keys. Both are idempotent, so a round repeated after a
//! lost lease changes nothing twice.

use std::time::Duration;

use orderly_shared::domain::bookings;
use orderly_shared::entities::idempotency_keys;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

/// How often a round runs.
pub const EVERY: Duration = Duration::from_secs(15);
/// How long past its hold an unpaid booking waits for its own job before the sweep acts.
const LATE: Duration = Duration::from_secs(60);
/// Most rows one round changes per table.
const ROUND_LIMIT: u64 = 1000;
const LEASE: &str = "scheduler-upkeep";

/// Runs a round every `every` while this process holds the lease, until `stop`.
pub async fn run(db: DatabaseConnection, holder: String, every: Duration, stop: CancellationToken) {
    loop {
        match orderly_shared::leases::acquire(&db, LEASE, &holder, every * 3).await {
            Ok(Some(_)) => {
                if let Err(e) = round(&db).await {
                    tracing::warn!(error = %format!("{e:#}"), "upkeep failed; retrying next round");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot take the upkeep lease"),
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(every) => {}
        }
    }
    let _ = orderly_shared::leases::release(&db, LEASE, &holder).await;
}

/// One round: the sweep, then the idempotency keys.
pub async fn round(db: &DatabaseConnection) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let expired = bookings::expire_overdue(db, LATE, ROUND_LIMIT)
        .await
        .context("sweeping expired holds")?;
    let pruned = idempotency_keys::prune_expired(db, ROUND_LIMIT)
        .await
        .context("pruning idempotency keys")?;
    if expired > 0 || pruned > 0 {
        tracing::info!(
            bookings.expired = expired,
            idempotency_keys.pruned = pruned,
            "upkeep round"
        );
    }
    Ok(())
}
