//! Typed configuration, read once from the environment at start-up.
//!
//! Every binary calls [`Settings::from_env`] with its [`Binary`]; a missing or malformed
//! variable stops it with one line naming the variable. Secrets are wrapped in
//! [`SecretString`] so they never print. With `APP_ENV=production` each binary's providers
//! must be real ones: the payment simulator, `.eml` files and the SMS log are development
//! defaults only.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

use orderly_db::outbox::Queue;

use crate::redis_target::RedisTarget;

mod db_timeouts;
pub use db_timeouts::{DbTimeoutOverrides, DbTimeouts};

/// `TEMPLATES_DIR` by default: the `shared/templates` folder of the source tree, so that
/// `cargo run` and tests find it from anywhere. A container sets `TEMPLATES_DIR`.
pub const DEFAULT_TEMPLATES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../templates");

/// A configuration problem, naming the variable at fault.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {var}: {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub var: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    fn new(var: &'static str, problem: impl Into<String>) -> Self {
        Self {
            var,
            problem: problem.into(),
        }
    }
}

/// Where the process runs; production refuses unsafe defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    /// Local development and tests.
    Development,
    /// A real deployment.
    Production,
}

/// The binary reading the settings, which decides the providers it must have in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    /// `orderly-api`: takes payments (`STRIPE_*`) and verifies Stripe's webhooks.
    Api,
    /// `orderly-worker`: payments, e-mail (`SMTP_URL`) and SMS (`SMS_PROVIDER`).
    Worker,
    /// `orderly-scheduler`: only queues jobs, so it needs no provider.
    Scheduler,
}

impl Binary {
    fn takes_payments(self) -> bool {
        matches!(self, Self::Api | Self::Worker)
    }

    fn sends_messages(self) -> bool {
        self == Self::Worker
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, coloured.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Where e-mail goes.
#[derive(Debug, Clone)]
pub enum MailTransport {
    /// A real SMTP server, e.g. `smtp://127.0.0.1:1025`.
    Smtp(SecretString),
    /// `.eml` files under `DATA_DIR/mail`.
    Files(PathBuf),
}

/// E-mail settings.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// Where messages are delivered.
    pub transport: MailTransport,
    /// The `From:` address.
    pub from: String,
    /// `SMTP_POOL_SIZE`: SMTP connections, and so transactions in flight at once. A crash
    /// can repeat only a message whose transaction was in flight, so this also bounds the
    /// duplicates one crash can cause.
    pub smtp_pool_size: u32,
    /// `DELIVERY_LEASE_SECONDS`: how long a message handed to its provider stays
    /// `sending` before another worker may send it again (its sender died). Longer than
    /// the providers' own timeouts.
    pub delivery_lease: Duration,
    /// `TEMPLATES_DIR`: the folder of the e-mail templates (`email/*.html`, `email/*.txt`);
    /// by default the source tree's `shared/templates`. `orderly-worker` checks them at start.
    pub templates_dir: PathBuf,
}

/// Where SMS go.
#[derive(Debug, Clone)]
pub enum SmsSettings {
    /// Appended to `DATA_DIR/sms.log`.
    Log(PathBuf),
    /// Twilio's Messages API.
    Twilio {
        /// Account SID.
        account_sid: String,
        /// Auth token.
        auth_token: SecretString,
        /// Sender number (E.164).
        from: String,
        /// Scheme, host and port of the API.
        api_base: String,
        /// `SMS_MAX_IN_FLIGHT`: requests to Twilio at once. A crash can repeat only a
        /// message whose request was in flight, so this also bounds the duplicate SMS one
        /// crash can cause.
        max_in_flight: u32,
    },
}

/// What the simulated payment provider does with a new payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimulatedPayments {
    /// Authorise at once.
    Authorize,
    /// Never authorise: every booking waits and expires.
    Never,
}

/// Which payment provider is used.
#[derive(Debug, Clone)]
pub enum PaymentSettings {
    /// Stripe (or a server speaking its API).
    Stripe {
        /// `sk_...` key.
        secret_key: SecretString,
        /// `whsec_...` webhook signing secret.
        webhook_secret: SecretString,
        /// API base URL, always ending in `/`.
        api_base: String,
    },
    /// The clearly labelled simulated provider.
    Simulated(SimulatedPayments),
}

/// Login attempt limits, counted in Redis so that they hold across API replicas.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// Failures allowed per e-mail address within the window.
    pub per_email: u32,
    /// Failures allowed per client address within the window.
    pub per_client: u32,
    /// The counting window.
    pub window: Duration,
}

/// Request rates limited where abuse costs money, counted in Redis across replicas.
#[derive(Debug, Clone, Copy)]
pub struct RateLimits {
    /// Bookings a user may make per minute.
    pub bookings_per_minute: u32,
    /// Registrations a client address may make per hour.
    pub registrations_per_hour: u32,
}

/// Every setting of every binary; each binary reads the part it needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `APP_ENV`.
    pub app_env: AppEnv,
    /// `DATABASE_URL`.
    pub database_url: SecretString,
    /// `DATABASE_POOL_SIZE`: most PostgreSQL connections of an API process.
    pub database_pool_size: u32,
    /// `DB_STATEMENT_TIMEOUT_MS`, `DB_LOCK_TIMEOUT_MS`, `DB_IDLE_IN_TRANSACTION_TIMEOUT_MS`:
    /// overrides of each binary's limits on its PostgreSQL sessions.
    pub db_timeouts: DbTimeoutOverrides,
    /// `REQUEST_TIMEOUT_SECONDS` (30): an API request still unanswered after it gets `503`.
    pub request_timeout: Duration,
    /// `PASSWORD_HASH_QUEUE` (32): password hashes an API process queues; past them, `503`.
    pub password_hash_queue: usize,
    /// `REDIS_URL`, parsed (its debug output shows no credentials).
    pub redis: RedisTarget,
    /// `REDIS_PREFIX`: namespace of every Redis key (tests use one per test).
    pub redis_prefix: String,
    /// `API_ADDR`.
    pub api_addr: SocketAddr,
    /// `METRICS_ADDR`: where `orderly-worker` and `orderly-scheduler` serve `/metrics` (port
    /// 0 picks a free one); unset, each binary's default (the API serves it on `API_ADDR`).
    pub metrics_addr: Option<SocketAddr>,
    /// `JWT_SECRET`.
    pub jwt_secret: SecretString,
    /// `BOOKING_HOLD_SECONDS`.
    pub booking_hold: Duration,
    /// `CANCELLATION_CUTOFF_HOURS` (24; 0 for none): a customer cannot cancel a booking
    /// whose payment went through this close to its listing's start (an admin can).
    pub cancellation_cutoff: Duration,
    /// `SMTP_URL`, `MAIL_FROM`.
    pub mail: MailSettings,
    /// `SMS_PROVIDER` and `TWILIO_*`.
    pub sms: SmsSettings,
    /// `STRIPE_*`, `SIMULATED_PAYMENTS`.
    pub payments: PaymentSettings,
    /// `DATA_DIR`.
    pub data_dir: PathBuf,
    /// `REPORT_CRON` (seconds field first), parsed.
    pub report_cron: cron::Schedule,
    /// `REPORT_TZ`.
    pub report_tz: chrono_tz::Tz,
    /// The rest of `orderly-scheduler`'s table and its lease.
    pub schedules: ScheduleSettings,
    /// `ADMIN_EMAILS`.
    pub admin_emails: Vec<String>,
    /// `SENTRY_DSN`.
    pub sentry_dsn: Option<SecretString>,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `CORS_ALLOWED_ORIGINS`, `CORS_ALLOWED_HEADERS`: what browsers on other origins may do.
    pub cors: CorsSettings,
    /// `LOGIN_MAX_FAILURES_PER_EMAIL`, `LOGIN_MAX_FAILURES_PER_CLIENT`, `LOGIN_WINDOW_SECONDS`.
    pub login_limits: LoginLimits,
    /// `TRUSTED_PROXIES`: the proxies (CIDRs) whose `X-Forwarded-For` / `Forwarded` hops
    /// are believed; empty, the socket peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `RATE_LIMIT_BOOKINGS_PER_MINUTE`, `RATE_LIMIT_REGISTRATIONS_PER_HOUR`.
    pub rate_limits: RateLimits,
    /// `MAX_OPEN_HOLDS_PER_CUSTOMER`: unpaid (`pending_payment`) bookings a customer may hold.
    pub max_open_holds_per_customer: u32,
    /// `HOSTNAME`: names this process to its peers (worker lists, lease holders).
    pub hostname: String,
    /// `WORKER_*`, `OUTBOX_LEASE_SECONDS`, `RECONCILE_INTERVAL_SECONDS`, `QUEUE_WINDOW_*`,
    /// `JOB_*`: `orderly-worker` (its flags override them).
    pub worker: WorkerSettings,
}

/// Cross-origin access for browser frontends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsSettings {
    /// `CORS_ALLOWED_ORIGINS`: origins as browsers send them (`https://shop.example`), or `*`;
    /// empty allows no cross-origin call.
    pub allowed_origins: Vec<String>,
    /// `CORS_ALLOWED_HEADERS`: request headers a cross-origin call may carry, lower case;
    /// [`DEFAULT_CORS_ALLOWED_HEADERS`] when unset.
    pub allowed_headers: Vec<String>,
}

/// The request headers a frontend may send by default: what the API reads, and the tracing
/// headers of Sentry's browser SDK.
pub const DEFAULT_CORS_ALLOWED_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "idempotency-key",
    "x-request-id",
    "sentry-trace",
    "baggage",
];

/// A cron entry's expression (seconds first) and the time zone it is read in.
#[derive(Debug, Clone)]
pub struct CronSetting {
    /// `<ENTRY>_CRON`, parsed.
    pub expression: cron::Schedule,
    /// `<ENTRY>_TZ` (UTC).
    pub tz: chrono_tz::Tz,
}

/// `orderly-scheduler`'s entries beside the report (`REPORT_CRON`, `REPORT_TZ`), and its lease.
#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    /// `REMINDERS_CRON` (every 15 minutes), `REMINDERS_TZ`.
    pub reminders: CronSetting,
    /// `SWEEP_CRON` (every minute), `SWEEP_TZ`.
    pub sweep: CronSetting,
    /// `RETENTION_CRON` (03:30 every day), `RETENTION_TZ`.
    pub retention: CronSetting,
    /// `RECONCILE_CRON` (every 10 minutes), `RECONCILE_TZ`: bookings compared with the
    /// payment provider.
    pub reconcile: CronSetting,
    /// `REMINDER_LEAD_HOURS` (24): how long before its listing starts a booking is reminded.
    pub reminder_lead_hours: u32,
    /// `REPORT_CATCH_UP_DAYS` (7, at most 30, the days retention keeps a report's job key):
    /// how far back a scheduler that was down makes the nightly reports it missed.
    pub report_catch_up_days: u32,
    /// `SCHEDULER_LEASE_SECONDS` (10): the leader's lease; a dead leader is replaced after it.
    pub lease: Duration,
}

/// `CANCELLATION_CUTOFF_HOURS`: 0 to a year.
fn cancellation_cutoff(env: &Env<'_>) -> Result<Duration, ConfigError> {
    let hours = env.parse::<u64>(
        "CANCELLATION_CUTOFF_HOURS",
        "24",
        "a whole number of hours (0 for no cutoff)",
    )?;
    if hours > 8760 {
        let problem = format!("expected at most 8760 hours (a year), got {hours}");
        return Err(ConfigError::new("CANCELLATION_CUTOFF_HOURS", problem));
    }
    Ok(Duration::from_secs(3600 * hours))
}

fn schedules(env: &Env<'_>) -> Result<ScheduleSettings, ConfigError> {
    let entry = |name: &'static str, tz: &'static str, default: &str| {
        Ok::<_, ConfigError>(CronSetting {
            expression: cron(env, name, default)?,
            tz: env.parse(tz, "UTC", "an IANA time zone such as Europe/Paris")?,
        })
    };
    let catch_up = env.positive("REPORT_CATCH_UP_DAYS", 7)?;
    if catch_up > 30 {
        let problem = format!("expected at most 30 days, got {catch_up}");
        return Err(ConfigError::new("REPORT_CATCH_UP_DAYS", problem));
    }
    Ok(ScheduleSettings {
        reminders: entry("REMINDERS_CRON", "REMINDERS_TZ", "0 */15 * * * *")?,
        sweep: entry("SWEEP_CRON", "SWEEP_TZ", "0 * * * * *")?,
        retention: entry("RETENTION_CRON", "RETENTION_TZ", "0 30 3 * * *")?,
        reconcile: entry("RECONCILE_CRON", "RECONCILE_TZ", "0 */10 * * * *")?,
        reminder_lead_hours: env.positive("REMINDER_LEAD_HOURS", 24)?,
        report_catch_up_days: catch_up,
        lease: Duration::from_secs(env.positive("SCHEDULER_LEASE_SECONDS", 10)?),
    })
}

/// What `orderly-worker` drains and how.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// `WORKER_QUEUES`: the queues to drain (default all five).
    pub queues: Vec<Queue>,
    /// `WORKER_CONCURRENCY`: jobs run at once per queue (64).
    pub concurrency: usize,
    /// `WORKER_QUEUE_CONCURRENCY`: per-queue overrides (`email=256,payments=8`).
    pub queue_concurrency: Vec<(Queue, usize)>,
    /// `WORKER_DB_POOL_SIZE`: most PostgreSQL connections of the process (32).
    pub db_pool_size: u32,
    /// `WORKER_HEARTBEAT_SECONDS` (3).
    pub heartbeat: Duration,
    /// `WORKER_MISSED_HEARTBEATS`: after these, a dead worker's fetched tasks go to others (10).
    pub missed_heartbeats: usize,
    /// `WORKER_SHUTDOWN_GRACE_SECONDS`: how long running jobs may finish after SIGTERM (20).
    pub shutdown_grace: Duration,
    /// `OUTBOX_LEASE_SECONDS`: a running job's lease without renewal (30).
    pub lease: Duration,
    /// `RECONCILE_INTERVAL_SECONDS` (5).
    pub reconcile_interval: Duration,
    /// `QUEUE_WINDOW_FACTOR` (2).
    pub window_factor: u32,
    /// `QUEUE_WINDOW_MIN` (64).
    pub window_min: u32,
    /// `QUEUE_WINDOW_MAX` (4096).
    pub window_max: u32,
    /// `JOB_RETRY_BASE_DELAY_MS`: overrides every job type's first retry delay.
    pub retry_base_delay: Option<Duration>,
    /// `JOB_MAX_ATTEMPTS`: overrides every job type's attempts.
    pub max_attempts: Option<u32>,
    /// `WORKER_NO_RELAY` unset: this process runs the outbox relay and the reconciler.
    pub relay: bool,
}

impl WorkerSettings {
    /// The concurrency of `queue`, with its override.
    pub fn concurrency_of(&self, queue: Queue) -> usize {
        self.queue_concurrency
            .iter()
            .find(|(q, _)| *q == queue)
            .map_or(self.concurrency, |(_, n)| *n)
            .max(1)
    }
}

/// Parses a queue name as written in `WORKER_QUEUES` / `--queues`.
pub fn parse_queue(name: &str) -> Result<Queue, String> {
    Queue::parse(name.trim()).ok_or_else(|| {
        format!("unknown queue `{name}` (expected bookings, payments, email, sms or reports)")
    })
}

/// Parses one `QUEUE=N` item of `WORKER_QUEUE_CONCURRENCY` / `--queue-concurrency`.
pub fn parse_queue_concurrency(item: &str) -> Result<(Queue, usize), String> {
    let (queue, n) = item
        .split_once('=')
        .ok_or_else(|| format!("expected QUEUE=N, got `{item}`"))?;
    let n: usize = n
        .trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("expected a positive number in `{item}`"))?;
    Ok((parse_queue(queue)?, n))
}

fn worker(env: &Env<'_>) -> Result<WorkerSettings, ConfigError> {
    let queues = match env.get("WORKER_QUEUES") {
        None => Queue::ALL.to_vec(),
        Some(_) => env
            .list("WORKER_QUEUES")
            .iter()
            .map(|q| parse_queue(q))
            .collect::<Result<_, _>>()
            .map_err(|e| ConfigError::new("WORKER_QUEUES", e))?,
    };
    let queue_concurrency = env
        .list("WORKER_QUEUE_CONCURRENCY")
        .iter()
        .map(|item| parse_queue_concurrency(item))
        .collect::<Result<_, _>>()
        .map_err(|e| ConfigError::new("WORKER_QUEUE_CONCURRENCY", e))?;
    let seconds = |name, default| env.positive(name, default).map(Duration::from_secs);
    Ok(WorkerSettings {
        queues,
        concurrency: env.positive("WORKER_CONCURRENCY", 64)?,
        queue_concurrency,
        db_pool_size: env.positive("WORKER_DB_POOL_SIZE", 32)?,
        heartbeat: seconds("WORKER_HEARTBEAT_SECONDS", 3)?,
        missed_heartbeats: env.positive("WORKER_MISSED_HEARTBEATS", 10)?,
        shutdown_grace: Duration::from_secs(env.parse(
            "WORKER_SHUTDOWN_GRACE_SECONDS",
            "20",
            "a number of seconds",
        )?),
        lease: seconds("OUTBOX_LEASE_SECONDS", 30)?,
        reconcile_interval: seconds("RECONCILE_INTERVAL_SECONDS", 5)?,
        window_factor: env.positive("QUEUE_WINDOW_FACTOR", 2)?,
        window_min: env.positive("QUEUE_WINDOW_MIN", 64)?,
        window_max: env.positive("QUEUE_WINDOW_MAX", 4096)?,
        retry_base_delay: env
            .get("JOB_RETRY_BASE_DELAY_MS")
            .map(|_| {
                env.positive("JOB_RETRY_BASE_DELAY_MS", 1)
                    .map(Duration::from_millis)
            })
            .transpose()?,
        max_attempts: env
            .get("JOB_MAX_ATTEMPTS")
            .map(|_| env.positive("JOB_MAX_ATTEMPTS", 1))
            .transpose()?,
        relay: !env.flag("WORKER_NO_RELAY")?,
    })
}

/// The minimum length of `JWT_SECRET`, in bytes.
pub const MIN_JWT_SECRET_BYTES: usize = 32;

impl Settings {
    /// Reads the process environment for `binary`: in production, refuses the development
    /// stand-ins for the providers it uses.
    pub fn from_env(binary: Binary) -> Result<Self, ConfigError> {
        Self::for_binary(binary, |name| std::env::var(name).ok())
    }

    fn for_binary(
        binary: Binary,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let settings = Self::from_lookup(lookup)?;
        settings.refuse_stand_ins(binary)?;
        Ok(settings)
    }

    /// Reads settings from a map; used by tests to build settings without touching the
    /// process environment. No binary is named, so production's provider rules
    /// ([`Settings::from_env`]) are not applied.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| vars.get(name).cloned())
    }

    /// In production, a provider that `binary` uses must be a real one: without Stripe's keys
    /// payments are simulated, without `SMTP_URL` e-mail becomes files, and `SMS_PROVIDER=log`
    /// only writes a log.
    fn refuse_stand_ins(&self, binary: Binary) -> Result<(), ConfigError> {
        if self.app_env != AppEnv::Production {
            return Ok(());
        }
        if binary.takes_payments() && matches!(self.payments, PaymentSettings::Simulated(_)) {
            return Err(ConfigError::new(
                "STRIPE_SECRET_KEY",
                "is required (with STRIPE_WEBHOOK_SECRET) when APP_ENV=production: without them payments are simulated",
            ));
        }
        if !binary.sends_messages() {
            return Ok(());
        }
        if let MailTransport::Files(_) = self.mail.transport {
            return Err(ConfigError::new(
                "SMTP_URL",
                "is required when APP_ENV=production: without it e-mail is only written to .eml files",
            ));
        }
        if let SmsSettings::Log(_) = self.sms {
            return Err(ConfigError::new(
                "SMS_PROVIDER",
                "must be `twilio` when APP_ENV=production: `log` only writes messages to a file",
            ));
        }
        Ok(())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env { lookup: &lookup };
        let app_env = match env.get("APP_ENV").as_deref() {
            None | Some("development") | Some("dev") | Some("test") => AppEnv::Development,
            Some("production") | Some("prod") => AppEnv::Production,
            Some(other) => {
                return Err(ConfigError::new(
                    "APP_ENV",
                    format!("expected `development` or `production`, got `{other}`"),
                ));
            }
        };
        let data_dir = PathBuf::from(env.get("DATA_DIR").unwrap_or_else(|| "./data".into()));
        Ok(Self {
            app_env,
            database_url: env.url("DATABASE_URL", &["postgres", "postgresql"])?,
            database_pool_size: env.positive("DATABASE_POOL_SIZE", 16)?,
            db_timeouts: db_timeouts::db_timeouts(&env)?,
            request_timeout: Duration::from_secs(env.positive("REQUEST_TIMEOUT_SECONDS", 30)?),
            password_hash_queue: env.positive("PASSWORD_HASH_QUEUE", 32)?,
            redis: env.redis_target("REDIS_URL")?,
            redis_prefix: env.get("REDIS_PREFIX").unwrap_or_else(|| "orderly".into()),
            api_addr: env.parse(
                "API_ADDR",
                "127.0.0.1:8080",
                "a socket address such as 127.0.0.1:8080",
            )?,
            metrics_addr: env
                .get("METRICS_ADDR")
                .map(|_| {
                    env.parse(
                        "METRICS_ADDR",
                        "",
                        "a socket address such as 127.0.0.1:9091",
                    )
                })
                .transpose()?,
            jwt_secret: jwt_secret(&env, app_env)?,
            booking_hold: Duration::from_secs(env.positive("BOOKING_HOLD_SECONDS", 900)?),
            cancellation_cutoff: cancellation_cutoff(&env)?,
            mail: mail(&env, &data_dir)?,
            sms: sms(&env, &data_dir)?,
            payments: payments(&env)?,
            report_cron: cron(&env, "REPORT_CRON", "0 0 2 * * *")?,
            report_tz: env.parse("REPORT_TZ", "UTC", "an IANA time zone such as Europe/Paris")?,
            schedules: schedules(&env)?,
            admin_emails: env.list("ADMIN_EMAILS"),
            sentry_dsn: env.get("SENTRY_DSN").map(SecretString::from),
            log_format: log_format(&env, app_env)?,
            cors: cors(&env)?,
            login_limits: LoginLimits {
                per_email: env.positive("LOGIN_MAX_FAILURES_PER_EMAIL", 5)?,
                per_client: env.positive("LOGIN_MAX_FAILURES_PER_CLIENT", 50)?,
                window: Duration::from_secs(env.positive("LOGIN_WINDOW_SECONDS", 900)?),
            },
            trusted_proxies: trusted_proxies(&env)?,
            rate_limits: RateLimits {
                bookings_per_minute: env.positive("RATE_LIMIT_BOOKINGS_PER_MINUTE", 30)?,
                registrations_per_hour: env.positive("RATE_LIMIT_REGISTRATIONS_PER_HOUR", 10)?,
            },
            max_open_holds_per_customer: env.positive("MAX_OPEN_HOLDS_PER_CUSTOMER", 5)?,
            hostname: env.get("HOSTNAME").unwrap_or_else(|| "localhost".into()),
            worker: worker(&env)?,
            data_dir,
        })
    }
}

struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    /// A variable's value; empty counts as unset.
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        self.get(name)
            .ok_or_else(|| ConfigError::new(name, "is not set"))
    }

    fn url(&self, name: &'static str, schemes: &[&str]) -> Result<SecretString, ConfigError> {
        let raw = self.required(name)?;
        let parsed = url::Url::parse(&raw)
            .map_err(|e| ConfigError::new(name, format!("is not a valid URL ({e})")))?;
        if !schemes.contains(&parsed.scheme()) {
            return Err(ConfigError::new(
                name,
                format!(
                    "scheme must be one of {}, got `{}`",
                    schemes.join(", "),
                    parsed.scheme()
                ),
            ));
        }
        Ok(SecretString::from(raw))
    }

    /// One of the forms of [`crate::redis_target`], parsed here so that a malformed one
    /// stops start-up naming the variable.
    fn redis_target(&self, name: &'static str) -> Result<RedisTarget, ConfigError> {
        let raw = self.required(name)?;
        RedisTarget::parse(&raw).map_err(|e| ConfigError::new(name, e.to_string()))
    }

    fn parse<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: &str,
        expected: &str,
    ) -> Result<T, ConfigError> {
        let raw = self.get(name).unwrap_or_else(|| default.to_owned());
        raw.parse()
            .map_err(|_| ConfigError::new(name, format!("expected {expected}, got `{raw}`")))
    }

    fn positive<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + Default + Copy,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => match raw.parse::<T>() {
                Ok(v) if v > T::default() => Ok(v),
                _ => Err(ConfigError::new(
                    name,
                    format!("expected a positive integer, got `{raw}`"),
                )),
            },
        }
    }

    fn flag(&self, name: &'static str) -> Result<bool, ConfigError> {
        match self.get(name).as_deref() {
            None | Some("0") | Some("false") | Some("no") => Ok(false),
            Some("1") | Some("true") | Some("yes") => Ok(true),
            Some(other) => Err(ConfigError::new(
                name,
                format!("expected true or false, got `{other}`"),
            )),
        }
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `TRUSTED_PROXIES`: comma-separated CIDRs (a bare address is one host). The old
/// `TRUST_PROXY_HEADERS` trusted any peer's first `X-Forwarded-For` hop, which the client
/// writes; set, it stops the start so that a deployment cannot keep it by mistake.
fn trusted_proxies(env: &Env<'_>) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    if env.get("TRUST_PROXY_HEADERS").is_some() {
        return Err(ConfigError::new(
            "TRUST_PROXY_HEADERS",
            "is no longer read: set TRUSTED_PROXIES to the CIDRs of your proxies instead \
             (e.g. TRUSTED_PROXIES=10.0.0.0/8)",
        ));
    }
    env.list("TRUSTED_PROXIES")
        .iter()
        .map(|raw| {
            raw.parse::<ipnet::IpNet>()
                .or_else(|_| raw.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    ConfigError::new(
                        "TRUSTED_PROXIES",
                        format!("expected comma-separated CIDRs such as 10.0.0.0/8, got `{raw}`"),
                    )
                })
        })
        .collect()
}

fn cors(env: &Env<'_>) -> Result<CorsSettings, ConfigError> {
    let allowed_origins = env.list("CORS_ALLOWED_ORIGINS");
    if let Some(problem) = allowed_origins.iter().find_map(|o| origin_problem(o)) {
        return Err(ConfigError::new("CORS_ALLOWED_ORIGINS", problem));
    }
    let allowed_headers: Vec<String> = match env.get("CORS_ALLOWED_HEADERS") {
        None => DEFAULT_CORS_ALLOWED_HEADERS
            .iter()
            .map(|h| (*h).to_owned())
            .collect(),
        Some(_) => env
            .list("CORS_ALLOWED_HEADERS")
            .into_iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
    };
    // RFC 9110 field names are tokens; `*` would be the wildcard, which we do not offer.
    let is_token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'+-.^_`|~".contains(&b);
    if let Some(bad) = allowed_headers
        .iter()
        .find(|h| !h.bytes().all(is_token_char))
    {
        return Err(ConfigError::new(
            "CORS_ALLOWED_HEADERS",
            format!(
                "`{bad}` is not a header name (expected a comma-separated list such as `authorization, content-type`)"
            ),
        ));
    }
    Ok(CorsSettings {
        allowed_origins,
        allowed_headers,
    })
}

/// Why `origin` can never match a browser's `Origin` header, if it cannot.
fn origin_problem(origin: &str) -> Option<String> {
    if origin == "*" {
        return None;
    }
    let url = match url::Url::parse(origin) {
        Ok(url) => url,
        Err(e) => return Some(format!("`{origin}` is not an origin ({e})")),
    };
    let expected = match url.origin() {
        url::Origin::Tuple(..) => url.origin().ascii_serialization(),
        // An app's own scheme (`capacitor://localhost`): taken as written when it names a host.
        url::Origin::Opaque(_) if url.has_host() && url.path().is_empty() => origin.to_owned(),
        url::Origin::Opaque(_) => return Some(format!("`{origin}` is not an origin")),
    };
    (expected != origin).then(|| {
        format!(
            "`{origin}` is not an origin as browsers send it (scheme://host[:port], no path): \
             did you mean `{expected}`?"
        )
    })
}

fn jwt_secret(env: &Env<'_>, app_env: AppEnv) -> Result<SecretString, ConfigError> {
    match env.get("JWT_SECRET") {
        Some(secret) if secret.len() >= MIN_JWT_SECRET_BYTES => Ok(SecretString::from(secret)),
        Some(secret) => Err(ConfigError::new(
            "JWT_SECRET",
            format!(
                "must be at least {MIN_JWT_SECRET_BYTES} bytes, got {}",
                secret.len()
            ),
        )),
        None if app_env == AppEnv::Production => Err(ConfigError::new(
            "JWT_SECRET",
            format!("is required when APP_ENV=production (at least {MIN_JWT_SECRET_BYTES} bytes)"),
        )),
        None => {
            // Development only: a fresh key per process, so tokens die with it.
            let mut bytes = [0u8; 48];
            rand::rng().fill_bytes(&mut bytes);
            Ok(SecretString::from(hex::encode(bytes)))
        }
    }
}

fn mail(env: &Env<'_>, data_dir: &std::path::Path) -> Result<MailSettings, ConfigError> {
    let transport = match env.get("SMTP_URL") {
        Some(_) => MailTransport::Smtp(env.url("SMTP_URL", &["smtp", "smtps"])?),
        None => MailTransport::Files(data_dir.join("mail")),
    };
    let from = env
        .get("MAIL_FROM")
        .unwrap_or_else(|| "Orderly <no-reply@orderly.localhost>".into());
    if !from.contains('@') {
        return Err(ConfigError::new(
            "MAIL_FROM",
            format!("is not an e-mail address: `{from}`"),
        ));
    }
    Ok(MailSettings {
        transport,
        from,
        smtp_pool_size: env.positive("SMTP_POOL_SIZE", 4)?,
        delivery_lease: Duration::from_secs(env.positive("DELIVERY_LEASE_SECONDS", 60)?),
        templates_dir: PathBuf::from(
            env.get("TEMPLATES_DIR")
                .unwrap_or_else(|| DEFAULT_TEMPLATES_DIR.into()),
        ),
    })
}

fn sms(env: &Env<'_>, data_dir: &std::path::Path) -> Result<SmsSettings, ConfigError> {
    // Checked whichever provider is chosen, so a bad value never waits for a switch.
    let max_in_flight = env.positive("SMS_MAX_IN_FLIGHT", 8)?;
    match env.get("SMS_PROVIDER").as_deref() {
        None | Some("log") => Ok(SmsSettings::Log(data_dir.join("sms.log"))),
        Some("twilio") => {
            let api_base = env
                .get("TWILIO_API_BASE")
                .unwrap_or_else(|| "https://api.twilio.com".into());
            url::Url::parse(&api_base).map_err(|e| {
                ConfigError::new("TWILIO_API_BASE", format!("is not a valid URL ({e})"))
            })?;
            Ok(SmsSettings::Twilio {
                account_sid: env.required("TWILIO_ACCOUNT_SID")?,
                auth_token: SecretString::from(env.required("TWILIO_AUTH_TOKEN")?),
                from: env.required("TWILIO_FROM")?,
                api_base: api_base.trim_end_matches('/').to_owned(),
                max_in_flight,
            })
        }
        Some(other) => Err(ConfigError::new(
            "SMS_PROVIDER",
            format!("expected `log` or `twilio`, got `{other}`"),
        )),
    }
}

fn payments(env: &Env<'_>) -> Result<PaymentSettings, ConfigError> {
    let simulated = match env.get("SIMULATED_PAYMENTS").as_deref() {
        None | Some("authorize") => SimulatedPayments::Authorize,
        Some("never") => SimulatedPayments::Never,
        Some(other) => {
            return Err(ConfigError::new(
                "SIMULATED_PAYMENTS",
                format!("expected `authorize` or `never`, got `{other}`"),
            ));
        }
    };
    match (
        env.get("STRIPE_SECRET_KEY"),
        env.get("STRIPE_WEBHOOK_SECRET"),
    ) {
        (None, None) => Ok(PaymentSettings::Simulated(simulated)),
        (Some(_), None) => Err(ConfigError::new(
            "STRIPE_WEBHOOK_SECRET",
            "is required when STRIPE_SECRET_KEY is set",
        )),
        (None, Some(_)) => Err(ConfigError::new(
            "STRIPE_SECRET_KEY",
            "is required when STRIPE_WEBHOOK_SECRET is set",
        )),
        (Some(secret_key), Some(webhook_secret)) => {
            let base = env
                .get("STRIPE_API_BASE")
                .unwrap_or_else(|| "https://api.stripe.com".into());
            url::Url::parse(&base).map_err(|e| {
                ConfigError::new("STRIPE_API_BASE", format!("is not a valid URL ({e})"))
            })?;
            Ok(PaymentSettings::Stripe {
                secret_key: SecretString::from(secret_key),
                webhook_secret: SecretString::from(webhook_secret),
                api_base: format!("{}/", base.trim_end_matches('/')),
            })
        }
    }
}

fn cron(env: &Env<'_>, name: &'static str, default: &str) -> Result<cron::Schedule, ConfigError> {
    let expr = env.get(name).unwrap_or_else(|| default.into());
    cron::Schedule::from_str(&expr).map_err(|e| {
        ConfigError::new(
            name,
            format!(
                "expected a cron expression with seconds first (`{default}`), got `{expr}`: {e}"
            ),
        )
    })
}

fn log_format(env: &Env<'_>, app_env: AppEnv) -> Result<LogFormat, ConfigError> {
    match env.get("LOG_FORMAT").as_deref() {
        None if app_env == AppEnv::Production => Ok(LogFormat::Json),
        None => Ok(LogFormat::Pretty),
        Some("pretty") => Ok(LogFormat::Pretty),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(ConfigError::new(
            "LOG_FORMAT",
            format!("expected `pretty` or `json`, got `{other}`"),
        )),
    }
}

impl Settings {
    /// The JWT signing key's bytes.
    pub fn jwt_key(&self) -> &[u8] {
        self.jwt_secret.expose_secret().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> HashMap<String, String> {
        HashMap::from([
            (
                "DATABASE_URL".into(),
                "postgres://u@127.0.0.1:5432/db".into(),
            ),
            ("REDIS_URL".into(), "redis://127.0.0.1:6379".into()),
        ])
    }

    fn error_of(vars: &HashMap<String, String>) -> ConfigError {
        match Settings::from_map(vars) {
            Ok(_) => panic!("settings were accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn trusted_proxies_are_cidrs_and_the_old_flag_stops_the_start() {
        let s = Settings::from_map(&base()).unwrap();
        assert!(s.trusted_proxies.is_empty());
        assert_eq!(s.rate_limits.bookings_per_minute, 30);
        assert_eq!(s.rate_limits.registrations_per_hour, 10);
        assert_eq!(s.max_open_holds_per_customer, 5);
        let mut vars = base();
        vars.insert(
            "TRUSTED_PROXIES".into(),
            "10.0.0.0/8, 192.0.2.7, ::1".into(),
        );
        let s = Settings::from_map(&vars).unwrap();
        let shown: Vec<String> = s.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.0.2.7/32", "::1/128"]);
        vars.insert("TRUSTED_PROXIES".into(), "10.0.0.0/33".into());
        assert_eq!(error_of(&vars).var, "TRUSTED_PROXIES");
        let mut vars = base();
        vars.insert("TRUST_PROXY_HEADERS".into(), "true".into());
        let error = error_of(&vars);
        assert_eq!(error.var, "TRUST_PROXY_HEADERS");
        assert!(
            error.problem.contains("TRUSTED_PROXIES"),
            "{}",
            error.problem
        );
    }

    #[test]
    fn defaults_follow_the_contract() {
        let s = Settings::from_map(&base()).unwrap();
        assert_eq!(s.api_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.metrics_addr, None);
        assert_eq!(s.booking_hold, Duration::from_secs(900));
        assert_eq!(s.cancellation_cutoff, Duration::from_secs(24 * 3600));
        assert_eq!(s.report_cron.source(), "0 0 2 * * *");
        assert_eq!(s.report_tz, chrono_tz::UTC);
        assert_eq!(s.schedules.reminders.expression.source(), "0 */15 * * * *");
        assert_eq!(s.schedules.sweep.expression.source(), "0 * * * * *");
        assert_eq!(s.schedules.retention.expression.source(), "0 30 3 * * *");
        assert_eq!(s.schedules.retention.tz, chrono_tz::UTC);
        assert_eq!(s.schedules.reminder_lead_hours, 24);
        assert_eq!(s.schedules.report_catch_up_days, 7);
        assert_eq!(s.schedules.lease, Duration::from_secs(10));
        assert!(matches!(
            s.payments,
            PaymentSettings::Simulated(SimulatedPayments::Authorize)
        ));
        assert!(matches!(s.sms, SmsSettings::Log(_)));
        assert!(matches!(s.mail.transport, MailTransport::Files(_)));
        assert_eq!(s.log_format, LogFormat::Pretty);
        assert!(s.jwt_key().len() >= MIN_JWT_SECRET_BYTES);
        assert_eq!(s.mail.smtp_pool_size, 4);
        assert_eq!(s.mail.delivery_lease, Duration::from_secs(60));
        assert!(s.mail.templates_dir.join("email/base.html").is_file());
        assert_eq!(s.worker.queues, Queue::ALL.to_vec());
        assert_eq!(s.worker.concurrency, 64);
        assert_eq!(s.worker.db_pool_size, 32);
        assert_eq!(s.worker.lease, Duration::from_secs(30));
        assert_eq!(s.worker.shutdown_grace, Duration::from_secs(20));
        assert!(s.worker.relay);
        assert_eq!(s.worker.max_attempts, None);
    }

    #[test]
    fn the_worker_reads_its_queues_and_their_concurrency() {
        let mut vars = base();
        vars.insert("WORKER_QUEUES".into(), "email, sms".into());
        vars.insert("WORKER_QUEUE_CONCURRENCY".into(), "sms=8".into());
        vars.insert("JOB_RETRY_BASE_DELAY_MS".into(), "250".into());
        vars.insert("WORKER_NO_RELAY".into(), "true".into());
        let s = Settings::from_map(&vars).unwrap().worker;
        assert_eq!(s.queues, vec![Queue::Email, Queue::Sms]);
        assert_eq!(s.concurrency_of(Queue::Email), 64);
        assert_eq!(s.concurrency_of(Queue::Sms), 8);
        assert_eq!(s.retry_base_delay, Some(Duration::from_millis(250)));
        assert!(!s.relay);
    }

    #[test]
    fn a_missing_database_url_is_named() {
        let mut vars = base();
        vars.remove("DATABASE_URL");
        let err = error_of(&vars);
        assert_eq!(err.var, "DATABASE_URL");
        assert_eq!(
            err.to_string(),
            "configuration error: DATABASE_URL: is not set"
        );
    }

    #[test]
    fn production_refuses_a_missing_or_short_jwt_secret() {
        let mut vars = base();
        vars.insert("APP_ENV".into(), "production".into());
        assert_eq!(error_of(&vars).var, "JWT_SECRET");
        vars.insert("JWT_SECRET".into(), "short".into());
        let err = error_of(&vars);
        assert_eq!(err.var, "JWT_SECRET");
        assert!(err.problem.contains("at least 32 bytes"), "{err}");
        vars.insert("JWT_SECRET".into(), "x".repeat(32));
        let s = Settings::from_map(&vars).unwrap();
        assert_eq!(s.log_format, LogFormat::Json);
    }

    /// Production settings with every provider a real one.
    fn production() -> HashMap<String, String> {
        let mut vars = base();
        for (k, v) in [
            ("APP_ENV", "production"),
            ("JWT_SECRET", "a-production-secret-of-at-least-32-bytes"),
            ("STRIPE_SECRET_KEY", "sk_live_x"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
            ("SMTP_URL", "smtp://mail.example.com:587"),
            ("SMS_PROVIDER", "twilio"),
            ("TWILIO_ACCOUNT_SID", "AC1"),
            ("TWILIO_AUTH_TOKEN", "token"),
            ("TWILIO_FROM", "+15550000000"),
        ] {
            vars.insert(k.into(), v.into());
        }
        vars
    }

    /// What `binary` makes of `vars`, as [`Settings::from_env`] would.
    fn start(binary: Binary, vars: &HashMap<String, String>) -> Result<Settings, ConfigError> {
        Settings::for_binary(binary, |name| vars.get(name).cloned())
    }

    const BINARIES: [Binary; 3] = [Binary::Api, Binary::Worker, Binary::Scheduler];

    #[test]
    fn production_with_real_providers_starts_every_binary() {
        for binary in BINARIES {
            let s = start(binary, &production()).unwrap();
            assert!(matches!(s.payments, PaymentSettings::Stripe { .. }));
            assert!(matches!(s.mail.transport, MailTransport::Smtp(_)));
            assert!(matches!(s.sms, SmsSettings::Twilio { .. }));
        }
    }

    #[test]
    fn production_refuses_simulated_payments_in_the_api_and_the_worker() {
        let mut vars = production();
        vars.remove("STRIPE_SECRET_KEY");
        vars.remove("STRIPE_WEBHOOK_SECRET");
        for binary in [Binary::Api, Binary::Worker] {
            let err = start(binary, &vars).unwrap_err();
            assert_eq!(err.var, "STRIPE_SECRET_KEY", "{binary:?}");
            assert!(err.problem.contains("APP_ENV=production"), "{err}");
            assert!(err.problem.contains("simulated"), "{err}");
        }
        vars.insert("STRIPE_SECRET_KEY".into(), "sk_live_x".into());
        for binary in [Binary::Api, Binary::Worker] {
            assert_eq!(
                start(binary, &vars).unwrap_err().var,
                "STRIPE_WEBHOOK_SECRET"
            );
        }
        vars.insert("SIMULATED_PAYMENTS".into(), "never".into());
        vars.remove("STRIPE_SECRET_KEY");
        assert_eq!(
            start(Binary::Api, &vars).unwrap_err().var,
            "STRIPE_SECRET_KEY"
        );
    }

    #[test]
    fn production_refuses_file_mail_in_the_worker() {
        let mut vars = production();
        vars.remove("SMTP_URL");
        let err = start(Binary::Worker, &vars).unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration error: SMTP_URL: is required when APP_ENV=production: \
             without it e-mail is only written to .eml files"
        );
        assert!(start(Binary::Api, &vars).is_ok(), "the API sends no e-mail");
    }

    #[test]
    fn production_refuses_the_sms_log_in_the_worker() {
        let mut vars = production();
        vars.remove("SMS_PROVIDER");
        assert_eq!(
            start(Binary::Worker, &vars).unwrap_err().var,
            "SMS_PROVIDER"
        );
        vars.insert("SMS_PROVIDER".into(), "log".into());
        let err = start(Binary::Worker, &vars).unwrap_err();
        assert_eq!(err.var, "SMS_PROVIDER");
        assert!(err.problem.contains("twilio"), "{err}");
        assert!(start(Binary::Api, &vars).is_ok(), "the API sends no SMS");
    }

    #[test]
    fn the_scheduler_needs_no_provider_in_production() {
        let mut vars = base();
        vars.insert("APP_ENV".into(), "production".into());
        vars.insert("JWT_SECRET".into(), "x".repeat(MIN_JWT_SECRET_BYTES));
        assert!(start(Binary::Scheduler, &vars).is_ok());
        assert!(start(Binary::Api, &vars).is_err());
        assert!(start(Binary::Worker, &vars).is_err());
    }

    #[test]
    fn development_keeps_the_simulator_files_and_log_as_defaults() {
        for binary in BINARIES {
            let s = start(binary, &base()).unwrap();
            assert!(matches!(
                s.payments,
                PaymentSettings::Simulated(SimulatedPayments::Authorize)
            ));
            assert!(matches!(s.mail.transport, MailTransport::Files(_)));
            assert!(matches!(s.sms, SmsSettings::Log(_)));
        }
    }

    #[test]
    fn malformed_values_name_their_variable() {
        for (var, value) in [
            ("API_ADDR", "nowhere"),
            ("METRICS_ADDR", "9091"),
            ("BOOKING_HOLD_SECONDS", "-5"),
            ("BOOKING_HOLD_SECONDS", "abc"),
            ("CANCELLATION_CUTOFF_HOURS", "-1"),
            ("CANCELLATION_CUTOFF_HOURS", "a day"),
            ("CANCELLATION_CUTOFF_HOURS", "100000000000000000"),
            ("DATABASE_POOL_SIZE", "0"),
            ("REPORT_TZ", "Mars/Base"),
            ("REPORT_CRON", "* *"),
            // Six fields, but no hour 25: only a real parse refuses it.
            ("REPORT_CRON", "0 0 25 * * *"),
            ("REMINDERS_CRON", "0 61 * * * *"),
            ("REMINDERS_TZ", "Europe/Atlantis"),
            ("SWEEP_CRON", "every minute"),
            ("SWEEP_TZ", "UTC+1"),
            ("RETENTION_CRON", "0 30 3 * *"),
            ("RETENTION_TZ", "Mars/Base"),
            ("REMINDER_LEAD_HOURS", "0"),
            ("REPORT_CATCH_UP_DAYS", "31"),
            ("REPORT_CATCH_UP_DAYS", "a week"),
            ("SCHEDULER_LEASE_SECONDS", "0"),
            ("WORKER_QUEUES", "email,pigeons"),
            ("WORKER_QUEUE_CONCURRENCY", "email=0"),
            ("WORKER_CONCURRENCY", "0"),
            ("OUTBOX_LEASE_SECONDS", "soon"),
            ("JOB_MAX_ATTEMPTS", "0"),
            ("WORKER_NO_RELAY", "perhaps"),
            ("SMS_PROVIDER", "pigeon"),
            ("SIMULATED_PAYMENTS", "sometimes"),
            ("LOG_FORMAT", "xml"),
            ("REDIS_URL", "http://127.0.0.1"),
            ("REDIS_URL", "redis+sentinel://127.0.0.1:26379"),
            ("SMTP_URL", "not a url"),
            ("SMTP_POOL_SIZE", "0"),
            ("SMTP_POOL_SIZE", "-1"),
            ("SMTP_POOL_SIZE", "four"),
            ("SMS_MAX_IN_FLIGHT", "0"),
            ("SMS_MAX_IN_FLIGHT", "many"),
            ("DELIVERY_LEASE_SECONDS", "0"),
        ] {
            let mut vars = base();
            vars.insert(var.into(), value.into());
            assert_eq!(error_of(&vars).var, var, "{var}={value}");
        }
    }

    #[test]
    fn twilio_needs_its_credentials() {
        let mut vars = base();
        vars.insert("SMS_PROVIDER".into(), "twilio".into());
        assert_eq!(error_of(&vars).var, "TWILIO_ACCOUNT_SID");
    }

    #[test]
    fn twilio_sends_at_most_sms_max_in_flight_at_once() {
        let mut vars = base();
        for (k, v) in [
            ("SMS_PROVIDER", "twilio"),
            ("TWILIO_ACCOUNT_SID", "AC1"),
            ("TWILIO_AUTH_TOKEN", "token"),
            ("TWILIO_FROM", "+15550000000"),
        ] {
            vars.insert(k.into(), v.into());
        }
        let in_flight = |vars: &HashMap<String, String>| match Settings::from_map(vars).unwrap().sms
        {
            SmsSettings::Twilio { max_in_flight, .. } => max_in_flight,
            SmsSettings::Log(_) => panic!("expected twilio"),
        };
        assert_eq!(in_flight(&vars), 8);
        vars.insert("SMS_MAX_IN_FLIGHT".into(), "3".into());
        assert_eq!(in_flight(&vars), 3);
        vars.insert("SMS_MAX_IN_FLIGHT".into(), "0".into());
        let err = error_of(&vars);
        assert_eq!(err.var, "SMS_MAX_IN_FLIGHT");
        assert_eq!(
            err.to_string(),
            "configuration error: SMS_MAX_IN_FLIGHT: expected a positive integer, got `0`"
        );
    }

    #[test]
    fn stripe_base_url_always_ends_with_a_slash() {
        let mut vars = base();
        vars.insert("STRIPE_SECRET_KEY".into(), "sk_test_x".into());
        vars.insert("STRIPE_WEBHOOK_SECRET".into(), "whsec_x".into());
        vars.insert("STRIPE_API_BASE".into(), "http://127.0.0.1:9999".into());
        let PaymentSettings::Stripe { api_base, .. } = Settings::from_map(&vars).unwrap().payments
        else {
            panic!("expected stripe");
        };
        assert_eq!(api_base, "http://127.0.0.1:9999/");
    }

    #[test]
    fn secrets_do_not_print() {
        let mut vars = base();
        vars.insert(
            "JWT_SECRET".into(),
            "a-very-secret-value-that-is-long-enough".into(),
        );
        let shown = format!("{:?}", Settings::from_map(&vars).unwrap());
        assert!(!shown.contains("a-very-secret-value"));
        assert!(!shown.contains("postgres://u@"));
    }

    #[test]
    fn cors_allows_the_api_headers_and_sentry_tracing_by_default() {
        let s = Settings::from_map(&base()).unwrap().cors;
        assert!(s.allowed_origins.is_empty());
        for header in [
            "authorization",
            "content-type",
            "idempotency-key",
            "x-request-id",
            "sentry-trace",
            "baggage",
        ] {
            assert!(s.allowed_headers.iter().any(|h| h == header), "{header}");
        }
    }

    #[test]
    fn cors_reads_origins_and_headers_from_comma_separated_lists() {
        let mut vars = base();
        vars.insert(
            "CORS_ALLOWED_ORIGINS".into(),
            "https://shop.example, http://localhost:5173".into(),
        );
        vars.insert(
            "CORS_ALLOWED_HEADERS".into(),
            "Content-Type, X-Custom".into(),
        );
        let s = Settings::from_map(&vars).unwrap().cors;
        assert_eq!(
            s.allowed_origins,
            ["https://shop.example", "http://localhost:5173"]
        );
        assert_eq!(s.allowed_headers, ["content-type", "x-custom"]);
    }

    #[test]
    fn a_malformed_cors_header_list_is_named() {
        let mut vars = base();
        vars.insert(
            "CORS_ALLOWED_HEADERS".into(),
            "authorization; content-type".into(),
        );
        let err = error_of(&vars);
        assert_eq!(err.var, "CORS_ALLOWED_HEADERS");
        assert!(
            err.problem.contains("`authorization; content-type`"),
            "{err}"
        );
        vars.insert("CORS_ALLOWED_HEADERS".into(), "*".into());
        assert_eq!(error_of(&vars).var, "CORS_ALLOWED_HEADERS");
    }

    #[test]
    fn an_origin_no_browser_sends_is_named() {
        let mut vars = base();
        for (origin, hint) in [
            (
                "https://shop.example/",
                "did you mean `https://shop.example`?",
            ),
            (
                "https://shop.example:443",
                "did you mean `https://shop.example`?",
            ),
            ("shop.example", "is not an origin"),
        ] {
            vars.insert("CORS_ALLOWED_ORIGINS".into(), format!("*, {origin}"));
            let err = error_of(&vars);
            assert_eq!(err.var, "CORS_ALLOWED_ORIGINS");
            assert!(err.problem.contains(hint), "{err}");
        }
    }
}
