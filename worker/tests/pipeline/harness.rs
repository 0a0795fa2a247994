//! A pipeline under test: its own database, Redis namespace and data folder, seed data made
//! through the same domain functions the API calls, and worker processes to start and kill.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use orderly_core::Settings;
use orderly_core::redis_conn::RedisConn;
use orderly_db::listings::{self, ListingStatus};
use orderly_db::users::{self, Role};
use orderly_domain::bookings;
use orderly_domain::templates::Templates;
use orderly_jobs::outbox::{self, NewJob};
use orderly_jobs::{Noop, Queue, wake};
use orderly_providers::Providers;
use orderly_testing::{Process, create_test_database, env, test_id, wait_until};
use orderly_worker::storage::QueueKeys;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Database, DatabaseConnection, Set, Statement};
use uuid::Uuid;

use crate::fakes::{FakeSmtp, Mail};

thread_local! {
    /// The `REDIS_URL` that [`Pipeline::new`] gives pipelines made on this thread, when set
    /// by [`on_redis`].
    static REDIS_URL: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Pipelines made on [`REDIS_URL`]'s URL so far.
    static ON_OVERRIDE: Cell<usize> = const { Cell::new(0) };
}

/// Runs `test`, one of this suite's `#[tokio::test]` functions, with every pipeline it
/// makes on `redis_url` instead of the default server: the same test body, another Redis.
/// `#[tokio::test]` runs its body on a current-thread runtime, on the calling thread, which
/// is what lets a thread-local choose the URL. (An override of `REDIS_URL` passed to
/// [`Pipeline::new`] still wins: such tests bring a server of their own.)
pub fn on_redis(redis_url: &str, test: fn()) {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            REDIS_URL.with(|url| url.borrow_mut().take());
        }
    }
    REDIS_URL.with(|url| *url.borrow_mut() = Some(redis_url.to_owned()));
    ON_OVERRIDE.set(0);
    let _reset = Reset;
    test();
    assert!(
        ON_OVERRIDE.get() > 0,
        "the test made no pipeline on {redis_url}: is it a current-thread #[tokio::test]?"
    );
}

/// The `REDIS_URL` of a new pipeline: [`on_redis`]'s, or the one `deploy/test.sh` started.
fn redis_url() -> String {
    match REDIS_URL.with(|url| url.borrow().clone()) {
        Some(url) => {
            ON_OVERRIDE.set(ON_OVERRIDE.get() + 1);
            url
        }
        None => env("REDIS_URL"),
    }
}

pub struct Pipeline {
    pub db: DatabaseConnection,
    pub settings: Settings,
    pub providers: Providers,
    pub templates: Templates,
    pub data_dir: PathBuf,
    /// The SMTP server this pipeline's workers send to, unless the test brought its own
    /// (`SMTP_URL` among the overrides): e-mail is counted where it arrives, so a message
    /// sent twice shows twice.
    smtp: Option<FakeSmtp>,
    vars: HashMap<String, String>,
}

impl Pipeline {
    /// A fresh pipeline; `overrides` are environment variables for settings and workers.
    pub async fn new(overrides: &[(&str, &str)]) -> Self {
        Self::build(overrides, true).await
    }

    /// A fresh pipeline whose e-mail goes to `.eml` files (`SMTP_URL` unset), for tests of
    /// that default transport itself.
    pub async fn with_mail_files(overrides: &[(&str, &str)]) -> Self {
        Self::build(overrides, false).await
    }

    async fn build(overrides: &[(&str, &str)], smtp_sink: bool) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let id = test_id();
        let database_url = create_test_database(&id).await;
        let data_dir = std::env::temp_dir().join(format!("orderly-pipeline-{id}"));
        let mut vars: HashMap<String, String> = HashMap::from([
            ("DATABASE_URL".into(), database_url.clone()),
            ("REDIS_URL".into(), redis_url()),
            ("REDIS_PREFIX".into(), format!("test:{id}")),
            ("DATA_DIR".into(), data_dir.display().to_string()),
            ("WORKER_HEARTBEAT_SECONDS".into(), "1".into()),
            ("WORKER_MISSED_HEARTBEATS".into(), "3".into()),
            ("RECONCILE_INTERVAL_SECONDS".into(), "1".into()),
            ("OUTBOX_LEASE_SECONDS".into(), "3".into()),
            ("RUST_LOG".into(), "warn,orderly_worker=info".into()),
            // Several workers per test and tests in parallel: each its own free port.
            ("METRICS_ADDR".into(), "127.0.0.1:0".into()),
        ]);
        for (k, v) in overrides {
            vars.insert((*k).into(), (*v).into());
        }
        let smtp = if !smtp_sink || vars.contains_key("SMTP_URL") {
            None
        } else {
            let smtp = FakeSmtp::start(Duration::ZERO).await;
            vars.insert("SMTP_URL".into(), smtp.url.clone());
            Some(smtp)
        };
        let settings = Settings::from_map(&vars).expect("settings");
        let providers = Providers::from_settings(&settings).expect("providers");
        let templates = Templates::load(&settings.mail.templates_dir).expect("templates");
        orderly_domain::messages::check(&templates).expect("templates");
        let db = Database::connect(&database_url)
            .await
            .expect("test database");
        Self {
            db,
            settings,
            providers,
            templates,
            data_dir,
            smtp,
            vars,
        }
    }

    /// Starts the worker binary with this pipeline's environment plus `extra`.
    pub fn spawn_worker(&self, extra: &[(&str, &str)]) -> WorkerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_orderly-worker"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in &self.vars {
            command.env(k, v);
        }
        for (k, v) in extra {
            command.env(k, v);
        }
        Process::new(
            command.spawn().expect("starting orderly-worker"),
            "the worker",
        )
    }

    pub async fn user(&self, role: Role, phone: Option<&str>) -> users::Model {
        let now = Utc::now();
        users::ActiveModel {
            id: Set(Uuid::now_v7()),
            email: Set(format!(
                "{}-{}@example.com",
                role.as_str(),
                Uuid::new_v4().simple()
            )),
            password_hash: Set("not-a-real-hash".into()),
            name: Set("Test".into()),
            phone: Set(phone.map(str::to_owned)),
            role: Set(role),
            created_at: Set(now.into()),
            updated_at: Set(now.into()),
        }
        .insert(&self.db)
        .await
        .unwrap()
    }

    pub async fn listing(&self, capacity: i32) -> listings::Model {
        self.listing_titled(capacity, "Sunset kayak tour").await
    }

    pub async fn listing_titled(&self, capacity: i32, title: &str) -> listings::Model {
        let provider = self.user(Role::Provider, None).await;
        let now = Utc::now();
        listings::ActiveModel {
            id: Set(Uuid::now_v7()),
            provider_id: Set(provider.id),
            title: Set(title.into()),
            description: Set(String::new()),
            starts_at: Set((now + chrono::Duration::days(7)).into()),
            capacity: Set(capacity),
            seats_left: Set(capacity),
            price_cents: Set(4200),
            currency: Set("eur".into()),
            status: Set(ListingStatus::Published),
            created_at: Set(now.into()),
            updated_at: Set(now.into()),
        }
        .insert(&self.db)
        .await
        .unwrap()
    }

    /// Books as the API does: the booking transaction, then the payment.
    pub async fn book(
        &self,
        customer: &users::Model,
        listing: &listings::Model,
        quantity: i32,
    ) -> Uuid {
        let gateway = self.providers.payments.as_ref();
        let created = orderly_domain::checkout::book(
            &self.db,
            self.settings.booking_hold,
            gateway,
            bookings::NewBooking {
                customer_id: customer.id,
                listing_id: listing.id,
                quantity,
                idempotency_key: None,
                request_id: Some(format!("req-{}", Uuid::new_v4().simple())),
                max_open_holds: None,
            },
        )
        .await
        .unwrap();
        let booking = created.booking;
        booking.id
    }

    /// `n` customers (each with a phone number of their own), each booking one seat.
    pub async fn book_many(&self, n: usize) -> Vec<Uuid> {
        let listing = self.listing(n as i32 + 10).await;
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let phone = format!("+4915{:09}", i);
            let customer = self.user(Role::Customer, Some(&phone)).await;
            ids.push(self.book(&customer, &listing, 1).await);
        }
        ids
    }

    /// `n` noop jobs on the bookings queue, due now, in one statement.
    pub async fn enqueue_noops(&self, n: usize) {
        let jobs: Vec<NewJob> = (0..n)
            .map(|_| NewJob::of(&Noop { id: Uuid::new_v4() }, None, None).unwrap())
            .collect();
        for chunk in jobs.chunks(5000) {
            outbox::enqueue_many(&self.db, chunk).await.unwrap();
        }
        wake::relays_now(&self.db).await.unwrap();
    }

    /// A Redis connection to this pipeline's server (or cluster, or Sentinel's primary).
    pub async fn redis(&self) -> RedisConn {
        orderly_core::redis_conn::connect(&self.settings)
            .await
            .unwrap()
    }

    /// The Redis keys of `queue`.
    pub fn keys(&self, queue: Queue) -> QueueKeys {
        QueueKeys::new(&self.settings.redis_prefix, queue)
    }

    pub async fn scalar(&self, sql: &str) -> i64 {
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                self.db.get_database_backend(),
                sql.to_owned(),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    }

    pub async fn text(&self, sql: &str) -> Option<String> {
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                self.db.get_database_backend(),
                sql.to_owned(),
            ))
            .await
            .unwrap()?;
        row.try_get_by_index::<Option<String>>(0).unwrap()
    }

    /// Waits until every outbox row due now reached an end.
    pub async fn wait_until_drained(&self, limit: Duration) {
        wait_until("every job ended", limit, || async {
            self.scalar("SELECT count(*) FROM outbox WHERE status IN ('pending', 'enqueued', 'running') AND run_at <= now() + interval '1 minute'")
                .await
                == 0
        })
        .await;
    }

    /// E-mails this pipeline's SMTP server accepted so far, decoded (a re-send is a second
    /// message here). Tests that bring their own server read it there.
    pub fn mails(&self) -> Vec<Mail> {
        self.smtp
            .as_ref()
            .expect("no SMTP server of the pipeline's: the test brought its own, or chose files")
            .mails()
    }
}

/// A running `orderly-worker`.
pub type WorkerProcess = Process;
