//! A scheduler under test: its own database, `orderly-scheduler` processes to start and
//! kill, and seed rows written as SQL.

use std::collections::HashMap;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use orderly_core::Settings;
use orderly_jobs::schedules::Table;
use orderly_testing::{Process, create_test_database, env, test_id, wait_until};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement, Value};
use uuid::Uuid;

pub struct Harness {
    pub db: DatabaseConnection,
    pub table: Table,
    vars: HashMap<String, String>,
}

/// A tick as `schedule_runs` recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub tick: DateTime<Utc>,
    pub leader: String,
    pub task_id: Option<String>,
}

impl Harness {
    /// A fresh database; `overrides` are environment variables of the schedulers.
    pub async fn new(overrides: &[(&str, &str)]) -> Self {
        let id = test_id();
        let database_url = create_test_database(&id).await;
        let mut vars: HashMap<String, String> = HashMap::from([
            ("DATABASE_URL".into(), database_url.clone()),
            ("REDIS_URL".into(), env("REDIS_URL")),
            ("HOSTNAME".into(), "test".into()),
            ("RUST_LOG".into(), "warn,orderly_scheduler=info".into()),
        ]);
        for (k, v) in overrides {
            vars.insert((*k).into(), (*v).into());
        }
        let settings = Settings::from_map(&vars).expect("settings");
        let db = Database::connect(&database_url)
            .await
            .expect("test database");
        Self {
            db,
            table: Table::from_settings(&settings),
            vars,
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_orderly-scheduler"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            // Replicas and parallel tests each serve /metrics on a port of their own.
            .env("METRICS_ADDR", "127.0.0.1:0")
            .envs(&self.vars);
        if std::env::var("TEST_LOG").is_err() {
            command.stderr(Stdio::null());
        }
        command
    }

    /// Starts `orderly-scheduler` (it runs until killed).
    pub fn spawn(&self) -> SchedulerProcess {
        self.spawn_with(&[])
    }

    /// Starts `orderly-scheduler` with `extra` variables on top of the harness's.
    pub fn spawn_with(&self, extra: &[(&str, &str)]) -> SchedulerProcess {
        Process::new(
            self.command()
                .envs(extra.iter().copied())
                .stdout(Stdio::null())
                .spawn()
                .expect("starting orderly-scheduler"),
            "the scheduler",
        )
    }

    /// Runs `orderly-scheduler ARGS` to its end.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .stderr(Stdio::piped())
            .output()
            .expect("running orderly-scheduler")
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        let row = self
            .db
            .query_one_raw(Statement::from_string(self.db.get_database_backend(), sql))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    }

    pub async fn execute(&self, sql: &str, values: Vec<Value>) {
        self.db
            .execute_raw(Statement::from_sql_and_values(
                self.db.get_database_backend(),
                sql,
                values,
            ))
            .await
            .unwrap();
    }

    /// The runs of entry `name`, oldest tick first.
    pub async fn runs(&self, name: &str) -> Vec<Run> {
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                self.db.get_database_backend(),
                "SELECT scheduled_for, leader, task_id FROM schedule_runs
                  WHERE schedule_name = $1 ORDER BY scheduled_for",
                [name.into()],
            ))
            .await
            .unwrap();
        rows.into_iter()
            .map(|r| Run {
                tick: r.try_get("", "scheduled_for").unwrap(),
                leader: r.try_get("", "leader").unwrap(),
                task_id: r.try_get("", "task_id").unwrap(),
            })
            .collect()
    }

    /// The dedup keys of the outbox rows of job type `job_type`, sorted.
    pub async fn jobs(&self, job_type: &str) -> Vec<String> {
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                self.db.get_database_backend(),
                "SELECT task_id FROM outbox WHERE job_type = $1 ORDER BY task_id",
                [job_type.into()],
            ))
            .await
            .unwrap();
        rows.into_iter()
            .map(|r| r.try_get("", "task_id").unwrap())
            .collect()
    }

    /// The holder of the scheduler's lease while it is live.
    pub async fn leader(&self) -> Option<String> {
        orderly_jobs::schedules::leader(&self.db)
            .await
            .unwrap()
            .map(|l| l.holder)
    }

    /// Waits until some scheduler leads, and returns it.
    pub async fn wait_for_leader(&self, limit: Duration) -> String {
        wait_until("a scheduler leads", limit, || async {
            self.leader().await.is_some()
        })
        .await;
        self.leader().await.unwrap()
    }

    /// Records a run of `name` at `tick`, as an earlier scheduler would have.
    pub async fn seed_run(&self, name: &str, tick: DateTime<Utc>) {
        self.execute(
            "INSERT INTO schedule_runs (schedule_name, scheduled_for, leader, status, finished_at)
             VALUES ($1, $2, 'an-earlier-scheduler', 'done', $2)",
            vec![name.into(), tick.into()],
        )
        .await;
    }

    /// A user; customers get a phone number.
    pub async fn user(&self, role: &str) -> Uuid {
        let id = Uuid::now_v7();
        let phone = (role == "customer").then(|| "+4915112345678".to_owned());
        self.execute(
            "INSERT INTO users (id, email, password_hash, name, phone, role)
             VALUES ($1, $2, 'not-a-hash', 'Test', $3, $4)",
            vec![
                id.into(),
                format!("{role}-{}@example.com", id.simple()).into(),
                phone.into(),
                role.into(),
            ],
        )
        .await;
        id
    }

    /// A listing starting `starts_in` from now.
    pub async fn listing(&self, starts_in: chrono::Duration, status: &str) -> Uuid {
        let id = Uuid::now_v7();
        let provider = self.user("provider").await;
        self.execute(
            "INSERT INTO listings (id, provider_id, title, description, starts_at, capacity,
                                   seats_left, price_cents, currency, status)
             VALUES ($1, $2, 'Sunset kayak tour', '', now() + make_interval(secs => $3), 10, 9,
                     4200, 'eur', $4)",
            vec![
                id.into(),
                provider.into(),
                (starts_in.num_seconds() as f64).into(),
                status.into(),
            ],
        )
        .await;
        id
    }

    /// A booking of one seat in `status`, which it reached `ago`.
    pub async fn booking(&self, listing: Uuid, status: &str, ago: chrono::Duration) -> Uuid {
        let id = Uuid::now_v7();
        let customer = self.user("customer").await;
        self.execute(
            "INSERT INTO bookings (id, listing_id, customer_id, quantity, amount_cents, currency,
                                   status, hold_expires_at, confirmed_at)
             VALUES ($1, $2, $3, 1, 4200, 'eur', $4, now() - make_interval(secs => $5),
                     CASE WHEN $4 IN ('confirmed', 'paid')
                          THEN now() - make_interval(secs => $5) END)",
            vec![
                id.into(),
                listing.into(),
                customer.into(),
                status.into(),
                (ago.num_seconds() as f64).into(),
            ],
        )
        .await;
        id
    }

    /// An outbox row of `job_type` with key `task_id` in `status`, finished `ago` if it did.
    pub async fn job(&self, job_type: &str, task_id: &str, status: &str, ago: chrono::Duration) {
        self.execute(
            "INSERT INTO outbox (id, queue, job_type, payload, task_id, status, completed_at)
             VALUES ($1, 'bookings', $2, '{}', $3, $4,
                     CASE WHEN $4 IN ('done', 'dead')
                          THEN now() - make_interval(secs => $5) END)",
            vec![
                Uuid::now_v7().into(),
                job_type.into(),
                task_id.into(),
                status.into(),
                (ago.num_seconds() as f64).into(),
            ],
        )
        .await;
    }
}

/// The pid inside a lease holder's name (`host:pid:nonce`).
pub fn pid_of(holder: &str) -> u32 {
    holder.split(':').nth(1).unwrap().parse().unwrap()
}

/// A running `orderly-scheduler`.
pub type SchedulerProcess = Process;
