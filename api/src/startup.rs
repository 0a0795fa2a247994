//! Building and running the HTTP server; tests call the same code on port 0.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, HttpRequest, HttpServer, web};
use anyhow::Context;
use metrics_exporter_prometheus::PrometheusRecorder;
use orderly_core::Settings;
use orderly_core::config::Binary;
use orderly_core::telemetry::meter::{Meter, prometheus_recorder};
use orderly_core::telemetry::metrics_endpoint::{self, MetricsEndpoint};
use orderly_providers::Providers;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::TokenKeys;
use crate::cors::{cors, cors_refusal_as_problem};
use crate::errors_fallback::plain_error_to_problem;
use crate::middleware::request_context;
use crate::problem::ApiError;
use crate::routes;
use crate::routes::openapi_document::ApiDoc;
use crate::routes::unmatched::Unmatched;
use crate::state::AppState;

/// A bound, not yet running, API server.
pub struct Application {
    port: u16,
    server: Server,
    /// `/metrics` on `METRICS_ADDR`, when set (served while this lives).
    metrics_endpoint: Option<MetricsEndpoint>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish()
    }
}

impl Application {
    /// Connects to PostgreSQL and Redis and binds `API_ADDR` (port 0 picks a free port).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        crate::auth::password::set_queue_limit(settings.password_hash_queue);
        let db =
            orderly_core::db::connect(&settings, Binary::Api, settings.database_pool_size).await?;
        let redis = orderly_core::redis_conn::connect(&settings).await?;
        let listener = TcpListener::bind(settings.api_addr)
            .with_context(|| format!("cannot listen on API_ADDR={}", settings.api_addr))?;
        let port = listener
            .local_addr()
            .context("reading the bound address")?
            .port();
        // The app's own Prometheus registry, not the `metrics` facade's global recorder: the
        // request middleware and the provider clients record into it and `/metrics` renders
        // it, so two apps in one process (tests) count only their own work.
        let metrics = Arc::new(prometheus_recorder()?);
        let state = AppState {
            db,
            redis,
            tokens: TokenKeys::new(settings.jwt_key()),
            providers: Providers::metered(&settings, Meter::local(metrics.clone()))?,
            settings: Arc::new(settings),
            local_counters: Arc::default(),
        };
        // With METRICS_ADDR, /metrics is served there only (a port the Service does not
        // expose); the main port then answers it 404.
        let metrics_endpoint = match state.settings.metrics_addr {
            Some(addr) => Some(metrics_endpoint::serve(addr, metrics.handle()).await?),
            None => None,
        };
        let server = serve(listener, state, web::Data::from(metrics))?;
        Ok(Self {
            port,
            server,
            metrics_endpoint,
        })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where `/metrics` is served apart from the API, with `METRICS_ADDR`.
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.metrics_endpoint.as_ref().map(MetricsEndpoint::addr)
    }

    /// Runs until the server stops (SIGINT/SIGTERM: graceful, 30 s).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let _metrics_endpoint = self.metrics_endpoint;
        self.server.await
    }
}

fn serve(
    listener: TcpListener,
    state: AppState,
    metrics: web::Data<PrometheusRecorder>,
) -> anyhow::Result<Server> {
    let cors_settings = state.settings.cors.clone();
    let state = web::Data::new(state);
    let openapi = ApiDoc::openapi();
    let unmatched = Arc::new(Unmatched::new(&routes::all()));
    let server = HttpServer::new(move || {
        App::new()
            .wrap(ErrorHandlers::new().default_handler(plain_error_to_problem))
            .wrap(cors(&cors_settings))
            .wrap(from_fn(cors_refusal_as_problem))
            .wrap(from_fn(request_context))
            // A hub per request, tagged with its id by `request_context`. A 500 reaches Sentry
            // once, as the `request failed` error event with its chain (`problem`).
            .wrap(
                sentry_actix::Sentry::builder()
                    .capture_server_errors(false)
                    .finish(),
            )
            // Outermost: past the deadline nothing inside runs on.
            .wrap(from_fn(crate::deadline::request_deadline))
            .app_data(state.clone())
            .app_data(metrics.clone())
            .app_data(web::PathConfig::default().error_handler(|err, _| {
                ApiError::NotFound(format!("no such resource ({err})")).into()
            }))
            .configure(routes::register(routes::service()))
            // Before the /api/v1 scope, which would otherwise claim /api/v1/openapi.json.
            .service(SwaggerUi::new("/docs/{_:.*}").url("/api/v1/openapi.json", openapi.clone()))
            .service(web::redirect("/docs", "/docs/"))
            .service(web::scope("/api/v1").configure(routes::register(routes::api_v1())))
            // HTML for people, outside the JSON API and its OpenAPI document.
            .configure(crate::dashboard::configure)
            .default_service(web::to({
                let unmatched = unmatched.clone();
                move |req: HttpRequest| {
                    let answer = unmatched.answer(&req);
                    async move { answer }
                }
            }))
    })
    .shutdown_timeout(30)
    .listen(listener)
    .context("starting the HTTP server")?
    .run();
    Ok(server)
}
