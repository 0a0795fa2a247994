//! A tick is fired under the lease's fencing token: a stale leader writes nothing, a tick
//! fired twice is one run with one job; and a run takes its job's outcome.

use std::time::Duration;

use chrono::{SubsecRound, Utc};
use orderly_core::leases;
use orderly_jobs::schedules::{Entry, LEASE};
use orderly_scheduler::record::{self, Fence, Fired};
use sea_orm::ConnectionTrait;

use crate::harness::Harness;

const TTL: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_stale_leader_fires_nothing_and_a_tick_fired_twice_is_one_run_with_one_job() {
    let h = Harness::new(&[]).await;
    let stale = leases::acquire(&h.db, LEASE, "a:1:old", TTL)
        .await
        .unwrap()
        .unwrap();
    // Its lease runs out (a partition, a pause); another replica takes over.
    h.execute(
        "UPDATE leases SET lease_until = now() - interval '1 second'",
        vec![],
    )
    .await;
    let token = leases::acquire(&h.db, LEASE, "b:2:new", TTL)
        .await
        .unwrap()
        .unwrap();
    assert!(token > stale);

    let tick = Utc::now().trunc_subsecs(0);
    let job = h.table.job_for_tick(Entry::Reminders, tick).unwrap();
    let old = Fence {
        holder: "a:1:old",
        token: stale,
    };
    let new = Fence {
        holder: "b:2:new",
        token,
    };
    assert_eq!(
        record::fire(&h.db, old, Entry::Reminders, tick, &job)
            .await
            .unwrap(),
        Fired::NotLeader
    );
    assert_eq!(
        record::fire(&h.db, new, Entry::Reminders, tick, &job)
            .await
            .unwrap(),
        Fired::New { job_new: true }
    );
    assert_eq!(
        record::fire(&h.db, new, Entry::Reminders, tick, &job)
            .await
            .unwrap(),
        Fired::Before
    );
    // Even a holder with its old name and a fresh lease cannot fire under an old token.
    assert_eq!(
        record::fire(
            &h.db,
            Fence {
                holder: "b:2:new",
                token: stale
            },
            Entry::Reminders,
            tick,
            &job
        )
        .await
        .unwrap(),
        Fired::NotLeader
    );
    let runs = h.runs("reminders").await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].leader, "b:2:new");
    assert_eq!(h.jobs("reminders").await, vec![job.task_id]);
}

#[tokio::test]
async fn a_run_is_done_when_its_job_is_and_failed_with_the_error_of_a_dead_one() {
    let h = Harness::new(&[]).await;
    let token = leases::acquire(&h.db, LEASE, "a:1:x", TTL)
        .await
        .unwrap()
        .unwrap();
    let fence = Fence {
        holder: "a:1:x",
        token,
    };
    let tick = Utc::now().trunc_subsecs(0);
    let mut keys = Vec::new();
    for entry in [Entry::Reminders, Entry::Sweep, Entry::Retention] {
        let job = h.table.job_for_tick(entry, tick).unwrap();
        record::fire(&h.db, fence, entry, tick, &job).await.unwrap();
        keys.push(job.task_id);
    }
    h.execute(
        "UPDATE outbox SET status = 'done', completed_at = now() WHERE task_id = $1",
        vec![keys[0].clone().into()],
    )
    .await;
    h.execute(
        "UPDATE outbox SET status = 'dead', completed_at = now(), last_error = 'database: gone' WHERE task_id = $1",
        vec![keys[1].clone().into()],
    )
    .await;
    assert_eq!(record::settle(&h.db).await.unwrap(), 2);
    let status = |name: &'static str| {
        let db = &h.db;
        async move {
            let row = db
                .query_one_raw(sea_orm::Statement::from_sql_and_values(
                    db.get_database_backend(),
                    "SELECT status, error, finished_at IS NOT NULL AS finished FROM schedule_runs WHERE schedule_name = $1",
                    [name.into()],
                ))
                .await
                .unwrap()
                .unwrap();
            (
                row.try_get::<String>("", "status").unwrap(),
                row.try_get::<Option<String>>("", "error").unwrap(),
                row.try_get::<bool>("", "finished").unwrap(),
            )
        }
    };
    assert_eq!(status("reminders").await, ("done".into(), None, true));
    assert_eq!(
        status("sweep").await,
        ("failed".into(), Some("database: gone".into()), true)
    );
    assert_eq!(status("retention").await, ("running".into(), None, false));
    // A job an operator discarded leaves its run failed, saying so.
    h.execute(
        "DELETE FROM outbox WHERE task_id = $1",
        vec![keys[2].clone().into()],
    )
    .await;
    assert_eq!(record::settle(&h.db).await.unwrap(), 1);
    let (status, error, _) = status("retention").await;
    assert_eq!(status, "failed");
    assert!(error.unwrap().contains("discarded"));
}
