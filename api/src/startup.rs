//! Building and running the HTTP server; tests call the same code on port 0.

use std::net::TcpListener;
use std::sync::Arc;

use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::http::{Method, header};
use actix_web::middleware::{ErrorHandlers, from_fn};
use actix_web::{App, HttpRequest, HttpServer, web};
use anyhow::Context;
use metrics_exporter_prometheus::PrometheusRecorder;
use orderly_shared::Settings;
use orderly_shared::providers::Providers;
use orderly_shared::telemetry::meter::{Meter, prometheus_recorder};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::TokenKeys;
use crate::errors_fallback::plain_error_to_problem;
use crate::middleware::request_context;
use crate::openapi::ApiDoc;
use crate::problem::ApiError;
use crate::routes;
use crate::routes::unmatched::Unmatched;
use crate::state::AppState;

/// A bound, not yet running, API server.
pub struct Application {
    port: u16,
    server: Server,
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
        let db = orderly_shared::db::connect(&settings, settings.database_pool_size).await?;
        let redis = orderly_shared::redis_conn::connect(&settings).await?;
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
        };
        let server = serve(listener, state, web::Data::from(metrics))?;
        Ok(Self { port, server })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs until the server stops (SIGINT/SIGTERM: graceful, 30 s).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("idempotency-key"),
            header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::HeaderName::from_static("x-request-id"),
            header::HeaderName::from_static("idempotent-replayed"),
            header::RETRY_AFTER,
        ])
        .max_age(3600);
    for origin in origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}

fn serve(
    listener: TcpListener,
    state: AppState,
    metrics: web::Data<PrometheusRecorder>,
) -> anyhow::Result<Server> {
    let origins = state.settings.cors_allowed_origins.clone();
    let state = web::Data::new(state);
    let openapi = ApiDoc::openapi();
    let unmatched = Arc::new(Unmatched::new(&routes::all()));
    let server = HttpServer::new(move || {
        App::new()
            .wrap(ErrorHandlers::new().default_handler(plain_error_to_problem))
            .wrap(cors(&origins))
            .wrap(from_fn(request_context))
            // A hub per request, tagged with its id by `request_context`. A 500 reaches Sentry
            // once, as the `request failed` error event with its chain (`problem`).
            .wrap(
                sentry_actix::Sentry::builder()
                    .capture_server_errors(false)
                    .finish(),
            )
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
