//! An operator's pause holds a queue across every worker process: jobs already in Redis are
//! not fetched, due ones are not pushed, running ones finish; on resume each runs once.

use std::time::Duration;

use orderly_db::audit_log::Actor;
use orderly_db::users::Role;
use orderly_jobs::Queue;
use orderly_jobs::pauses;
use orderly_testing::wait_until;
use orderly_worker::queues::RedisTransport;
use orderly_worker::relay::{RelaySettings, relay_once};

use crate::harness::Pipeline;

#[tokio::test]
async fn a_paused_queue_is_not_picked_up_by_two_worker_processes_until_resumed_then_each_job_runs_once()
 {
    let p = Pipeline::new(&[]).await;
    let admin = p.user(Role::Admin, None).await;
    let actor = Actor {
        user_id: admin.id,
        request_id: Some("req-pause"),
    };
    let mut redis = p.redis().await;
    let keys = p.keys(Queue::Bookings);

    // 30 jobs already pushed to Redis, then the pause, then 30 more committed.
    p.enqueue_noops(30).await;
    let transport = RedisTransport::new(redis.clone(), p.settings.redis_prefix.clone());
    let pushed = relay_once(&p.db, &transport, &RelaySettings::default(), &[])
        .await
        .unwrap()
        .pushed;
    assert_eq!(pushed, 30);
    let changed = pauses::set_paused(
        &p.db,
        &mut redis,
        &p.settings.redis_prefix,
        Queue::Bookings,
        true,
        actor,
    )
    .await
    .unwrap();
    assert!(changed);
    p.enqueue_noops(30).await;

    let _first = p.spawn_worker(&[]);
    let _second = p.spawn_worker(&[]);
    // Both processes are up, have fetched from the queue (a fetch registers the worker in
    // the queue's Redis set) and their relays and reconcilers have run for two heartbeats.
    wait_until(
        "both workers polled the paused queue for two heartbeats",
        Duration::from_secs(30),
        || async {
            let fetching: i64 = redis::cmd("ZCARD")
                .arg(keys.workers())
                .query_async(&mut redis.clone())
                .await
                .unwrap();
            fetching >= 2
                && p.scalar(
                    "SELECT count(*) FROM workers
                      WHERE heartbeat_at >= started_at + interval '2 seconds'",
                )
                .await
                    >= 2
        },
    )
    .await;
    assert_eq!(
        p.scalar("SELECT count(*) FROM outbox WHERE status IN ('running', 'done', 'dead')")
            .await,
        0,
        "nothing ran while the queue was paused"
    );
    assert_eq!(
        p.scalar("SELECT count(*) FROM outbox WHERE status = 'enqueued'")
            .await,
        30,
        "the pushed jobs wait in Redis"
    );
    assert_eq!(
        p.scalar("SELECT count(*) FROM outbox WHERE status = 'pending'")
            .await,
        30,
        "the relays pushed nothing more"
    );
    let waiting: i64 = redis::cmd("LLEN")
        .arg(keys.ready())
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(waiting, 30);

    pauses::set_paused(
        &p.db,
        &mut redis,
        &p.settings.redis_prefix,
        Queue::Bookings,
        false,
        actor,
    )
    .await
    .unwrap();
    p.wait_until_drained(Duration::from_secs(30)).await;
    assert_eq!(
        p.scalar("SELECT count(*) FROM outbox WHERE status = 'done' AND attempts = 1")
            .await,
        60,
        "every job ran once"
    );
    assert_eq!(
        p.scalar(
            "SELECT count(*) FROM audit_log WHERE entity_type = 'queue' AND entity_id = 'bookings'"
        )
        .await,
        2
    );
}
