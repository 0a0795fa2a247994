#![allow(clippy::expect_used, clippy::panic)]
//! Test support for the suites of every crate (a dev-dependency only): a fresh database per test cloned from a migrated
//! template, private Redis servers, and polling with a deadline.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, Statement};
use uuid::Uuid;

use orderly_migrations::{Migrator, MigratorTrait};

pub mod metrics;
pub mod sql;
pub mod stripe;

/// Advisory lock key serialising template creation and cloning across test processes.
const TEMPLATE_LOCK: i64 = 7_301_977;

/// A variable set by `deploy/test.sh`.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with deploy/test.sh, which starts PostgreSQL and Redis")
    })
}

/// Creates `orderly_test_<id>` from the template (made on first use) and returns its URL.
pub async fn create_test_database(test_id: &str) -> String {
    let admin_url = env("DATABASE_URL");
    let template =
        std::env::var("TEST_TEMPLATE_DATABASE").unwrap_or_else(|_| "orderly_test_template".into());
    let admin = Database::connect(&admin_url).await.expect("admin database");
    let backend = admin.get_database_backend();
    let sql = |s: String| Statement::from_string(backend, s);
    admin
        .execute_raw(sql(format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})")))
        .await
        .expect("template lock");
    let exists = admin
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            "SELECT 1 AS one FROM pg_database WHERE datname = $1",
            [template.clone().into()],
        ))
        .await
        .expect("looking for the template")
        .is_some();
    if !exists {
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{template}\""))
            .await
            .expect("creating the template");
        let template_db = Database::connect(with_database(&admin_url, &template))
            .await
            .expect("template");
        Migrator::up(&template_db, None)
            .await
            .expect("migrating the template");
        template_db.close().await.expect("closing the template");
    }
    let name = format!("orderly_test_{test_id}");
    admin
        .execute_unprepared(&format!(
            "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\" STRATEGY FILE_COPY"
        ))
        .await
        .expect("cloning the template database");
    admin
        .execute_raw(sql(format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})")))
        .await
        .expect("template unlock");
    admin.close().await.expect("closing the admin connection");
    with_database(&admin_url, &name)
}

/// The same server URL with another database name.
pub fn with_database(url: &str, name: &str) -> String {
    let mut url = url::Url::parse(url).expect("DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A new id for a test's database and Redis prefix.
pub fn test_id() -> String {
    Uuid::new_v4().simple().to_string()
}

/// A private `redis-server` for tests that stop or empty their Redis.
#[derive(Debug)]
pub struct RedisServer {
    /// `redis://127.0.0.1:<port>`.
    pub url: String,
    /// Its port.
    pub port: u16,
    child: std::process::Child,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers.
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Self::start_on(port).await
    }

    /// Starts one on `port` (to restart a stopped server at the same address).
    pub async fn start_on(port: u16) -> Self {
        let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
        let child = std::process::Command::new(bin)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("starting redis-server (REDIS_SERVER_BIN)");
        let url = format!("redis://127.0.0.1:{port}");
        let client = redis::Client::open(url.as_str()).expect("redis url");
        wait_until("redis-server answers", Duration::from_secs(10), || {
            let client = client.clone();
            async move { client.get_multiplexed_async_connection().await.is_ok() }
        })
        .await;
        Self { url, port, child }
    }

    /// Kills the server.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `check` every 20 ms until it is true; panics after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A private PostgreSQL server for tests that stop and restart their database: made with
/// `initdb` in a folder of its own (the binaries from `PATH`, where `deploy/test.sh` puts
/// them), run as `ORDERLY_PG_USER` when the tests run as root, migrated, on a free port.
#[derive(Debug)]
pub struct PgServer {
    /// `postgres://orderly@127.0.0.1:<port>/orderly`, migrated.
    pub url: String,
    port: u16,
    dir: std::path::PathBuf,
}

impl PgServer {
    /// Initialises, starts and migrates one.
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::path::PathBuf::from(format!("/var/tmp/orderly-test-pg-{}", test_id()));
        std::fs::create_dir_all(&dir).expect("the server's folder");
        let server = Self {
            url: format!("postgres://orderly@127.0.0.1:{port}/orderly"),
            port,
            dir,
        };
        if let Some(user) = Self::user() {
            let status = std::process::Command::new("chown")
                .args([&format!("{user}:"), &server.dir.display().to_string()])
                .status()
                .expect("chown");
            assert!(status.success(), "chown {user} {}", server.dir.display());
        }
        let data = server.data();
        server.run(&[
            "initdb",
            "-D",
            &data,
            "-U",
            "orderly",
            "--auth=trust",
            "-N",
            "-E",
            "UTF8",
        ]);
        server.start_again().await;
        let admin = Database::connect(format!("postgres://orderly@127.0.0.1:{port}/postgres"))
            .await
            .expect("the private server");
        admin
            .execute_unprepared("CREATE DATABASE orderly")
            .await
            .expect("creating its database");
        admin.close().await.expect("closing");
        let db = Database::connect(&server.url).await.expect("its database");
        Migrator::up(&db, None).await.expect("migrating it");
        db.close().await.expect("closing");
        server
    }

    /// The user to run the server as when the tests run as root.
    fn user() -> Option<String> {
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        root.then(|| std::env::var("ORDERLY_PG_USER").unwrap_or_else(|_| "orderly".into()))
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn run(&self, args: &[&str]) {
        let mut command = match Self::user() {
            Some(user) => {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", &user, "--"]).args(args);
                c
            }
            None => {
                let mut c = std::process::Command::new(args[0]);
                c.args(&args[1..]);
                c
            }
        };
        let out = command
            .current_dir("/")
            .output()
            .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the (stopped) server again on the same port and data.
    pub async fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log").display().to_string();
        self.run(&[
            "pg_ctl",
            "-D",
            &self.data(),
            "-o",
            &options,
            "-l",
            &log,
            "-w",
            "start",
        ]);
    }

    /// Stops it at once, as a crash or an outage would.
    pub fn stop(&self) {
        self.run(&[
            "pg_ctl",
            "-D",
            &self.data(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ]);
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("runuser")
            .args(["-u", &Self::user().unwrap_or_default(), "--"])
            .args(["pg_ctl", "-D", &self.data(), "-m", "immediate", "stop"])
            .current_dir("/")
            .output();
        if Self::user().is_none() {
            let _ = std::process::Command::new("pg_ctl")
                .args(["-D", &self.data(), "-m", "immediate", "stop"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh copy of the source tree's templates folder, for a test to break.
pub fn copy_of_templates() -> std::path::PathBuf {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).expect("creating the templates copy");
        for entry in std::fs::read_dir(from).expect("reading the templates") {
            let entry = entry.expect("reading the templates");
            let target = to.join(entry.file_name());
            if entry.path().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).expect("copying a template");
            }
        }
    }
    let dir = std::env::temp_dir().join(format!("orderly-templates-{}", Uuid::new_v4()));
    copy(
        std::path::Path::new(orderly_core::config::DEFAULT_TEMPLATES_DIR),
        &dir,
    );
    dir
}

/// A binary under test running as a child process: killed (and reaped) when dropped. Its
/// methods panic on failure, as test code does.
pub struct Process {
    child: std::process::Child,
    name: &'static str,
}

#[allow(clippy::unwrap_used)]
impl Process {
    /// Wraps `child`, a started `name` (for failure messages).
    pub fn new(child: std::process::Child, name: &'static str) -> Self {
        Self { child, name }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGKILL, then reap.
    pub fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM (a graceful stop); see [`Process::exited`].
    pub fn sigterm(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// SIGSTOP: the process freezes where it is, as under a stalled VM or a long pause,
    /// holding its connections and claims; see [`Process::resume`].
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// SIGCONT: a paused process goes on from where it stopped.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} {}", self.name);
    }

    /// Waits for the process to exit on its own.
    pub async fn exited(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} did not exit within {limit:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
