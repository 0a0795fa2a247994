//! Redis behind Sentinel: the primary is killed with SIGKILL mid-flow, the Sentinel promotes
//! the replica, and the same worker process goes on with the new primary. Jobs the old
//! primary held but never replicated come back from the outbox; nothing runs twice.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use orderly_db::users::Role;
use orderly_testing::{Process, test_id, wait_until};

use crate::fakes::{FakeSmtp, FakeTwilio};
use crate::harness::Pipeline;

/// The name the Sentinel knows the primary by.
const MASTER: &str = "orderly-primary";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn redis_server() -> Command {
    Command::new(std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into()))
}

/// A redis-server on a free loopback port with no persistence, data in `dir`.
fn start_redis(dir: &std::path::Path, extra: &[&str]) -> (u16, Process) {
    let port = free_port();
    let child = redis_server()
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .args(["--dir", &dir.display().to_string()])
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .expect("starting redis-server (REDIS_SERVER_BIN)");
    (port, Process::new(child, "redis-server"))
}

async fn query(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    cmd.query_async(&mut conn).await
}

async fn info_has(port: u16, section: &str, line: &str) -> bool {
    query(port, redis::cmd("INFO").arg(section))
        .await
        .is_ok_and(|info| info.lines().any(|l| l.trim() == line))
}

/// A primary, its replica and one Sentinel (quorum 1, down after 1 s), killed on drop.
struct SentinelSetup {
    primary: Process,
    primary_port: u16,
    replica_port: u16,
    sentinel_port: u16,
    _replica: Process,
    _sentinel: Process,
    dir: PathBuf,
}

impl SentinelSetup {
    async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("orderly-sentinel-{}", test_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (primary_port, primary) = start_redis(&dir, &[]);
        wait_until("the primary answers", Duration::from_secs(10), || async {
            query(primary_port, &redis::cmd("PING")).await.is_ok()
        })
        .await;
        let replica_dir = dir.join("replica");
        std::fs::create_dir_all(&replica_dir).unwrap();
        let (replica_port, replica) = start_redis(
            &replica_dir,
            &["--replicaof", "127.0.0.1", &primary_port.to_string()],
        );
        wait_until("the replica is in sync", Duration::from_secs(20), || {
            info_has(replica_port, "replication", "master_link_status:up")
        })
        .await;

        let sentinel_port = free_port();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor {MASTER} 127.0.0.1 {primary_port} 1\n\
                 sentinel down-after-milliseconds {MASTER} 1000\n\
                 sentinel failover-timeout {MASTER} 10000\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        let sentinel = redis_server()
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .spawn()
            .expect("starting redis-server --sentinel");
        let sentinel = Process::new(sentinel, "redis-sentinel");
        // A failover needs a replica the Sentinel knows of: it learns them from the primary.
        wait_until(
            "the Sentinel knows the replica",
            Duration::from_secs(30),
            || async { replicas_known(sentinel_port).await >= 1 },
        )
        .await;
        Self {
            primary,
            primary_port,
            replica_port,
            sentinel_port,
            _replica: replica,
            _sentinel: sentinel,
            dir,
        }
    }

    fn url(&self) -> String {
        format!("redis+sentinel://127.0.0.1:{}/{MASTER}", self.sentinel_port)
    }

    /// The primary's port as the Sentinel names it now.
    async fn named_primary(&self) -> Option<u16> {
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{}", self.sentinel_port)).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let addr: Vec<String> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(MASTER)
            .query_async(&mut conn)
            .await
            .ok()?;
        addr.get(1)?.parse().ok()
    }
}

/// Replicas of [`MASTER`] the Sentinel at `port` knows and does not think down.
async fn replicas_known(port: u16) -> usize {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
        return 0;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return 0;
    };
    let replicas: Vec<std::collections::HashMap<String, String>> = redis::cmd("SENTINEL")
        .arg("REPLICAS")
        .arg(MASTER)
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    replicas
        .iter()
        .filter(|r| r.get("flags").is_some_and(|f| !f.contains("down")))
        .count()
}

impl Drop for SentinelSetup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn the_redis_primary_killed_mid_flow_fails_over_through_sentinel_and_every_job_runs_once() {
    let mut redis = SentinelSetup::start().await;
    assert_eq!(redis.named_primary().await, Some(redis.primary_port));
    let smtp = FakeSmtp::start(Duration::from_millis(40)).await;
    let twilio = FakeTwilio::start(201, serde_json::json!({"sid": "SM1"})).await;
    let url = redis.url();
    let mut vars: Vec<(&str, String)> =
        vec![("REDIS_URL", url.clone()), ("SMTP_URL", smtp.url.clone())];
    vars.extend(twilio.env());
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let p = Pipeline::new(&vars).await;
    let ids = p.book_many(60).await;

    let mut worker = p.spawn_worker(&[]);
    wait_until("some messages went", Duration::from_secs(60), || async {
        smtp.accepted() >= 20
    })
    .await;
    redis.primary.kill_9();
    let at_kill = smtp.accepted();
    assert!(
        at_kill < 120,
        "the kill must land mid-flow ({at_kill} of 120 e-mails)"
    );
    // Bookings keep coming while Redis fails over: the outbox holds their work.
    let listing = p.listing_titled(10, "Harbour walk").await;
    let mut later = Vec::new();
    for i in 0..10 {
        let customer = p.user(Role::Customer, Some(&format!("+4916{i:09}"))).await;
        later.push(p.book(&customer, &listing, 1).await);
    }
    wait_until(
        "the Sentinel promoted the replica",
        Duration::from_secs(30),
        || async { redis.named_primary().await == Some(redis.replica_port) },
    )
    .await;
    assert!(
        info_has(redis.replica_port, "replication", "role:master").await,
        "the replica is the primary now"
    );

    p.wait_until_drained(Duration::from_secs(120)).await;
    assert!(worker.is_running(), "the worker went on without a restart");
    assert_eq!(
        p.scalar("SELECT count(*) FROM bookings WHERE status = 'paid'")
            .await,
        70
    );
    assert_eq!(
        p.scalar("SELECT count(*) FROM outbox WHERE status = 'dead'")
            .await,
        0
    );
    assert_eq!(
        p.scalar("SELECT count(*) FROM notifications WHERE status <> 'sent'")
            .await,
        0
    );
    // Every confirmation and receipt arrived exactly once: Redis losing a task or handing it
    // out again after the failover changes nothing PostgreSQL's fence lets through.
    assert_eq!(
        smtp.by_message_id().len(),
        140,
        "a confirmation and a receipt per booking"
    );
    assert_eq!(smtp.duplicates(), 0, "no e-mail twice");
    for id in ids.iter().chain(&later) {
        assert_eq!(smtp.containing(&id.to_string()), 2, "booking {id}");
    }
    assert_eq!(twilio.duplicates(), 0, "no SMS twice");
    assert_eq!(twilio.distinct(), 70, "one confirmation SMS per customer");
    // The worker's jobs after the failover went through the promoted replica.
    let mut conn = p.redis().await;
    let workers: Vec<String> = redis::AsyncCommands::zrange(
        &mut conn,
        p.keys(orderly_jobs::Queue::Email).workers(),
        0,
        -1,
    )
    .await
    .unwrap();
    assert!(
        !workers.is_empty(),
        "the email queue's workers heart-beat on the new primary"
    );
}
