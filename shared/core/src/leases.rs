//! Leader leases in PostgreSQL: one holder at a time for singleton work (the reconciler,
//! the scheduler), decided by the database's clock, with a fencing token that grows on
//! every change of holder.

use std::time::Duration;

use orderly_db::sql::stmt;
use sea_orm::{ConnectionTrait, DbErr};

/// Takes lease `name` for `holder` for `ttl`, or renews it if `holder` has it. Returns the
/// fencing token while `holder` holds it, `None` while someone else does.
pub async fn acquire(
    db: &impl ConnectionTrait,
    name: &str,
    holder: &str,
    ttl: Duration,
) -> Result<Option<i64>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            &ACQUIRE,
            vec![
                name.to_owned().into(),
                holder.to_owned().into(),
                ttl.as_secs_f64().into(),
            ],
        ))
        .await?;
    row.map(|r| r.try_get::<i64>("", "token")).transpose()
}

/// Gives lease `name` up if `holder` has it, so another can take it at once.
pub async fn release(db: &impl ConnectionTrait, name: &str, holder: &str) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        &RELEASE,
        vec![name.to_owned().into(), holder.to_owned().into()],
    ))
    .await?;
    Ok(())
}

orderly_db::sql! {
    ACQUIRE = "INSERT INTO leases (name, holder, token, lease_until)
             VALUES ($1, $2, 1, now() + make_interval(secs => $3))
             ON CONFLICT (name) DO UPDATE
                SET holder = EXCLUDED.holder,
                    token = CASE WHEN leases.holder = EXCLUDED.holder THEN leases.token
                                 ELSE leases.token + 1 END,
                    lease_until = EXCLUDED.lease_until
              WHERE leases.holder = EXCLUDED.holder OR leases.lease_until < now()
             RETURNING token";

    RELEASE = "DELETE FROM leases WHERE name = $1 AND holder = $2";
}
