//! The relays are woken just after a commit that queued jobs (`wake::commit`), by a `NOTIFY`
//! of its own: none is sent from inside the transaction, where PostgreSQL would make every
//! such transaction commit one at a time.

use std::sync::Arc;
use std::time::Duration;

use orderly_jobs::{Job, Noop, outbox, wake};
use orderly_testing::wait_until;
use orderly_worker::queues::RedisTransport;
use orderly_worker::relay::{self, RelaySettings};
use sea_orm::TransactionTrait;
use sea_orm::sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::harness::Pipeline;

async fn enqueued(p: &Pipeline, task_id: &str) -> bool {
    p.scalar(&format!(
        "SELECT count(*) FROM outbox WHERE task_id = '{task_id}' AND status = 'enqueued'"
    ))
    .await
        == 1
}

#[tokio::test]
async fn a_sleeping_relay_takes_a_job_as_soon_as_its_transaction_commits_with_wake() {
    let p = Pipeline::new(&[]).await;
    let mut listener = PgListener::connect_with(p.db.get_postgres_connection_pool())
        .await
        .unwrap();
    listener.listen(wake::CHANNEL).await.unwrap();

    // A relay that, unless woken, searches the outbox once a minute. Its first round takes
    // the job that was there before it started; then it sleeps.
    let first = Noop { id: Uuid::new_v4() };
    let first_key = first.dedup_key();
    outbox::enqueue(&p.db, &first, None, None).await.unwrap();
    let transport = Arc::new(RedisTransport::new(
        p.redis().await,
        p.settings.redis_prefix.clone(),
    ));
    let stop = CancellationToken::new();
    let settings = RelaySettings {
        poll: Duration::from_secs(60),
        ..Default::default()
    };
    let running = tokio::spawn(relay::run(
        p.db.clone(),
        transport,
        settings,
        Arc::new(Notify::new()),
        stop.clone(),
    ));
    wait_until("the relay's first round", Duration::from_secs(10), || {
        enqueued(&p, &first_key)
    })
    .await;

    // Committing writes no NOTIFY: the outbox has no trigger that would send one.
    let triggers = p
        .scalar("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'outbox'::regclass AND tgname = 'outbox_notify'")
        .await;
    assert_eq!(triggers, 0);

    let second = Noop { id: Uuid::new_v4() };
    let second_key = second.dedup_key();
    let txn = p.db.begin().await.unwrap();
    outbox::enqueue(&txn, &second, None, None).await.unwrap();
    wake::commit(&p.db, txn).await.unwrap();

    // The wake-up comes after the commit, so whoever it wakes sees the row.
    let notification = tokio::time::timeout(Duration::from_secs(10), listener.recv())
        .await
        .expect("no wake-up within 10 s")
        .unwrap();
    assert_eq!(notification.channel(), wake::CHANNEL);
    let visible = p
        .scalar(&format!(
            "SELECT count(*) FROM outbox WHERE task_id = '{second_key}'"
        ))
        .await;
    assert_eq!(visible, 1);
    // Well before the relay's minute is up.
    wait_until("the woken relay's round", Duration::from_secs(10), || {
        enqueued(&p, &second_key)
    })
    .await;

    stop.cancel();
    running.await.unwrap();
}
