//! What the scheduler recorded: each entry's latest run, and which replica leads.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use orderly_db::sql::stmt;
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use super::Entry;
use orderly_db::schedule_runs;

/// The name of the scheduler's lease in `leases`.
pub const LEASE: &str = "scheduler";

/// The scheduler replica that leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// The replica (`host:pid:nonce`).
    pub holder: String,
    /// Its fencing token: it grows with every change of leader.
    pub token: i64,
    /// Until when it leads unless it renews (PostgreSQL's clock).
    pub lease_until: DateTime<Utc>,
}

/// The replica whose lease is live, if any.
pub async fn leader(db: &impl ConnectionTrait) -> Result<Option<Leader>, DbErr> {
    let row = db
        .query_one_raw(stmt(&LEASE_HOLDER, vec![LEASE.into()]))
        .await?;
    row.map(|r| {
        Ok(Leader {
            holder: r.try_get("", "holder")?,
            token: r.try_get("", "token")?,
            lease_until: r.try_get("", "lease_until")?,
        })
    })
    .transpose()
}

/// Each entry's latest run (by the tick it belongs to), for entries that ran.
pub async fn last_runs(
    db: &impl ConnectionTrait,
) -> Result<HashMap<Entry, schedule_runs::Model>, DbErr> {
    let names: Vec<String> = Entry::ALL.iter().map(|e| e.name().to_owned()).collect();
    let runs = schedule_runs::Model::find_by_statement(stmt(&LAST_RUNS, vec![names.into()]))
        .all(db)
        .await?;
    Ok(runs
        .into_iter()
        .filter_map(|run| Entry::parse(&run.schedule_name).map(|entry| (entry, run)))
        .collect())
}

orderly_db::sql! {
    LEASE_HOLDER = "SELECT holder, token, lease_until FROM leases WHERE name = $1 AND lease_until > now()";

    LAST_RUNS = "SELECT r.* FROM unnest($1::text[]) AS e(name)
           CROSS JOIN LATERAL (SELECT * FROM schedule_runs
                                WHERE schedule_name = e.name
                                ORDER BY scheduled_for DESC LIMIT 1) r";
}
