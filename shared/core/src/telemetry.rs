//! Logging, error reporting and metrics, set up once per binary.
//!
//! Logs are `tracing` events with dotted fields (`booking.id`, `job.queue`, `duration_ms`);
//! pretty in development, JSON in production. Sentry receives errors when `SENTRY_DSN` is set:
//! each `error!` is an event, tagged by the API with `request.id` and by the worker with
//! `job.id`, `job.queue` and `job.type`. Metrics: [`meter`] and [`metrics_endpoint`].

pub mod meter;
pub mod metrics_endpoint;

use secrecy::ExposeSecret;
use sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

use crate::config::{AppEnv, LogFormat, Settings};

/// Keeps Sentry alive; flushes pending events when dropped at the end of `main`.
pub struct Telemetry {
    _sentry: Option<sentry::ClientInitGuard>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("sentry", &self._sentry.is_some())
            .finish()
    }
}

/// Installs Sentry (when `SENTRY_DSN` is set) and the global tracing subscriber for the
/// binary named `service`.
///
/// `RUST_LOG` overrides the default filter (`info` for our crates, `warn` for the rest).
pub fn init(service: &'static str, settings: &Settings) -> Telemetry {
    // Sentry first: hubs of threads that touch Sentry copy the main hub's client then.
    let sentry = settings.sentry_dsn.as_ref().map(|dsn| {
        sentry::init((
            dsn.expose_secret().to_owned(),
            sentry_options(service, settings),
        ))
    });
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("warn,orderly_core=info,orderly_db=info,orderly_jobs=info,orderly_providers=info,orderly_domain=info,orderly_api=info,orderly_worker=info,orderly_scheduler=info,orderly_migrations=info")
    });
    // Errors become Sentry events; info and above ride along as breadcrumbs.
    let sentry_layer = settings.sentry_dsn.as_ref().map(|_| {
        ErrorLayer::new()
            .with_filter(LevelFilter::ERROR)
            .and_then(BreadcrumbLayer::new().with_filter(LevelFilter::INFO))
    });
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(sentry_layer);
    // A second init (several apps in one test process) keeps the first subscriber.
    let _ = match settings.log_format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().compact()).try_init(),
    };
    Telemetry { _sentry: sentry }
}

/// The release every binary reports: they are built from one workspace version.
pub const RELEASE: &str = concat!("orderly@", env!("CARGO_PKG_VERSION"));

/// Sentry's options for `service`: release, environment (`APP_ENV`), server name, and no
/// personal data (no client addresses, cookies or authorisation headers; our log lines, which
/// become events and breadcrumbs, carry ids, never personal data).
pub fn sentry_options(service: &'static str, settings: &Settings) -> sentry::ClientOptions {
    sentry::ClientOptions::new()
        .release(RELEASE)
        .environment(match settings.app_env {
            AppEnv::Production => "production",
            AppEnv::Development => "development",
        })
        .server_name(service)
        .send_default_pii(false)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn sentry_reports_the_release_and_environment_and_no_personal_data() {
        let vars: HashMap<String, String> = [
            ("DATABASE_URL", "postgres://u@127.0.0.1:5432/db"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("APP_ENV", "production"),
            ("JWT_SECRET", "a-secret-that-is-long-enough-for-production"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let settings = Settings::from_map(&vars).unwrap();
        let options = sentry_options("orderly-worker", &settings);
        assert_eq!(
            options.release.as_deref(),
            Some(concat!("orderly@", env!("CARGO_PKG_VERSION")))
        );
        assert_eq!(options.environment.as_deref(), Some("production"));
        assert_eq!(options.server_name.as_deref(), Some("orderly-worker"));
        assert!(!options.send_default_pii);
    }
}
