//! Logging and error reporting, set up once per binary.
//!
//! Logs are `tracing` events with dotted fields (`booking.id`, `job.queue`, `duration_ms`);
//! pretty in development, JSON in production. Sentry receives errors when `SENTRY_DSN` is set.

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

/// Installs the global tracing subscriber and Sentry for the binary named `service`.
///
/// `RUST_LOG` overrides the default filter (`info` for our crates, `warn` for the rest).
pub fn init(service: &'static str, settings: &Settings) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new("warn,orderly_shared=info,orderly_api=info,orderly_worker=info,orderly_scheduler=info,orderly_migrations=info")
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

    let sentry = settings.sentry_dsn.as_ref().map(|dsn| {
        sentry::init((
            dsn.expose_secret().to_owned(),
            sentry::ClientOptions::new()
                .release(sentry::release_name!().unwrap_or_default())
                .environment(match settings.app_env {
                    AppEnv::Production => "production",
                    AppEnv::Development => "development",
                })
                .server_name(service),
        ))
    });
    Telemetry { _sentry: sentry }
}
