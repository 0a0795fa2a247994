//! The pipeline on a three-master Redis Cluster (`deploy/test.sh` starts one on loopback and
//! exports `ORDERLY_TEST_REDIS_CLUSTER_URL`): the flow, a worker killed mid-flow and a large
//! backlog, each the very test the single server passes, run through
//! [`harness::on_redis`](crate::harness::on_redis). A queue's keys share one hash tag, so
//! each queue's scripts run on the node owning its slot; a test's prefix only changes
//! which slot that is.

use std::collections::BTreeSet;

use orderly_core::redis_conn::RedisConn;
use orderly_jobs::Queue;
use orderly_testing::{env, test_id};
use orderly_worker::storage::QueueKeys;

use crate::harness::on_redis;

fn cluster_url() -> String {
    env("ORDERLY_TEST_REDIS_CLUSTER_URL")
}

#[test]
fn bookings_become_paid_with_one_confirmation_email_and_sms_each_on_a_redis_cluster() {
    on_redis(
        &cluster_url(),
        crate::flow::bookings_become_paid_with_one_confirmation_email_and_sms_each,
    );
}

#[test]
fn a_worker_killed_mid_flow_on_a_redis_cluster_duplicates_at_most_two_messages_and_loses_none() {
    on_redis(
        &cluster_url(),
        crate::crashes::a_worker_killed_while_a_slow_smtp_server_takes_200_bookings_messages_duplicates_at_most_two_and_loses_none,
    );
}

#[test]
fn a_backlog_of_20000_jobs_drains_on_a_redis_cluster_holding_only_a_window() {
    on_redis(
        &cluster_url(),
        crate::faults::a_backlog_of_20000_jobs_drains_with_no_worker_restart_and_redis_holding_only_a_window,
    );
}

/// The premise of the tests above: the URL names a healthy three-master cluster, and every
/// key of one queue (its wake channel too) hashes to that queue's one slot, as the cluster
/// itself computes it.
#[tokio::test]
async fn each_queue_lives_in_one_slot_of_a_three_master_cluster() {
    let mut conn = RedisConn::open(&cluster_url()).await.unwrap();
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query_async(&mut conn)
        .await
        .unwrap();
    for line in [
        "cluster_state:ok",
        "cluster_size:3",
        "cluster_slots_assigned:16384",
    ] {
        assert!(info.lines().any(|l| l.trim() == line), "{line} in {info}");
    }

    let prefix = format!("test:{}", test_id());
    for queue in Queue::ALL {
        let keys = QueueKeys::new(&prefix, queue);
        let mut of_queue = BTreeSet::new();
        for key in [
            keys.ready(),
            keys.data(),
            keys.workers(),
            keys.paused(),
            keys.inflight("worker-1"),
            keys.wake_channel(),
        ] {
            let slot: u16 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            of_queue.insert(slot);
        }
        assert_eq!(of_queue.len(), 1, "{queue:?}: {of_queue:?}");
    }
}
