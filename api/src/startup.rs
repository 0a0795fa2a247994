//! Building and running the HTTP server; tests call the same code on port 0.

use std::net::TcpListener;
use std::sync::Arc;

use actix_cors::{Cors, CorsError};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::{ErrorHandlers, Next, from_fn};
use actix_web::{App, HttpRequest, HttpServer, ResponseError, web};
use anyhow::Context;
use metrics_exporter_prometheus::PrometheusRecorder;
use orderly_core::Settings;
use orderly_core::config::{Binary, CorsSettings};
use orderly_core::telemetry::meter::{Meter, prometheus_recorder};
use orderly_core::telemetry::metrics_endpoint::{self, MetricsEndpoint};
use orderly_providers::Providers;
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

/// The CORS policy for browser frontends (`CORS_ALLOWED_ORIGINS`, `CORS_ALLOWED_HEADERS`),
/// exposing the headers a frontend reads: the request id, a replay, when to retry, and why a
/// token was refused.
fn cors(settings: &CorsSettings) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(CORS_METHODS)
        .allowed_headers(settings.allowed_headers.iter().map(String::as_str))
        .expose_headers(EXPOSED_HEADERS.map(header::HeaderName::from_static))
        .max_age(3600);
    for origin in &settings.allowed_origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}

/// The answer headers a frontend on another origin may read: the request id, a replay,
/// when to retry, why a token was refused, and where a rate limit stands.
pub const EXPOSED_HEADERS: [&str; 6] = [
    "x-request-id",
    "idempotent-replayed",
    "retry-after",
    "www-authenticate",
    "ratelimit",
    "ratelimit-policy",
];

/// The CORS headers of an answer made outside the CORS layer (the request deadline's `503`)
/// to a request from `origin`, when that origin is allowed: without them a browser shows a
/// CORS failure instead of the `503` and its `Retry-After`.
pub fn cors_headers_for(
    settings: &CorsSettings,
    origin: &str,
) -> Vec<(header::HeaderName, header::HeaderValue)> {
    let allowed = settings
        .allowed_origins
        .iter()
        .any(|o| o == "*" || o == origin);
    let Ok(origin) = header::HeaderValue::from_str(origin) else {
        return Vec::new();
    };
    if !allowed {
        return Vec::new();
    }
    vec![
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, origin),
        (
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            header::HeaderValue::from_str(&EXPOSED_HEADERS.join(", "))
                .unwrap_or(header::HeaderValue::from_static("x-request-id")),
        ),
        (header::VARY, header::HeaderValue::from_static("Origin")),
    ]
}

/// The methods a cross-origin call may use.
const CORS_METHODS: [Method; 4] = [Method::GET, Method::POST, Method::PATCH, Method::DELETE];

/// Answers what `actix-cors` refused (in plain text, `400`) as problem JSON: `403 forbidden`
/// when the origin, method or headers are not allowed, `400 bad_request` when the preflight
/// itself is malformed. Browsers fail any preflight that is not `2xx`; the body is for the
/// developer reading the network tab.
async fn cors_refusal_as_problem(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let res = next.call(req).await?;
    let refusal = res
        .response()
        .error()
        .and_then(|e| e.as_error::<CorsError>())
        .cloned();
    let Some(refusal) = refusal else {
        return Ok(res.map_into_boxed_body());
    };
    let error = cors_refusal(&refusal, res.request());
    let (req, _) = res.into_parts();
    Ok(ServiceResponse::new(req, error.error_response()))
}

/// What a refused cross-origin request is told.
fn cors_refusal(refusal: &CorsError, req: &HttpRequest) -> ApiError {
    let requested = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let allowed_headers = req
        .app_data::<web::Data<AppState>>()
        .map(|state| state.settings.cors.allowed_headers.clone())
        .unwrap_or_default();
    match refusal {
        CorsError::OriginNotAllowed => ApiError::Forbidden(format!(
            "CORS: the origin `{}` may not call this API from a browser (not in CORS_ALLOWED_ORIGINS)",
            requested(header::ORIGIN)
        )),
        CorsError::MethodNotAllowed => ApiError::Forbidden(format!(
            "CORS: the method `{}` is not allowed cross-origin; allowed: {}",
            requested(header::ACCESS_CONTROL_REQUEST_METHOD),
            CORS_METHODS.map(|m| m.to_string()).join(", ")
        )),
        CorsError::HeadersNotAllowed => {
            let refused: Vec<String> = requested(header::ACCESS_CONTROL_REQUEST_HEADERS)
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty() && !allowed_headers.contains(h))
                .map(|h| format!("`{h}`"))
                .collect();
            ApiError::Forbidden(format!(
                "CORS: the request header(s) {} may not be sent cross-origin; allowed: {} (CORS_ALLOWED_HEADERS)",
                refused.join(", "),
                allowed_headers.join(", ")
            ))
        }
        malformed => {
            ApiError::BadRequest(format!("CORS: malformed preflight request: {malformed}"))
        }
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
