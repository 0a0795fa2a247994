//! Per-request plumbing: the request id (also a Sentry tag), the request span and log line,
//! and HTTP metrics.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use metrics_exporter_prometheus::PrometheusRecorder;
use tracing::Instrument;
use uuid::Uuid;

/// The request id header, read from the request when present and always answered.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the current request, stored in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Accepts a caller's id when it is short printable ASCII; otherwise makes one.
pub(crate) fn request_id_of(req: &ServiceRequest) -> String {
    req.headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::now_v7().to_string())
}

/// Wraps every request: request id in and out, a span, a log line, metrics.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let request_id = request_id_of(&req);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    // The request's own Sentry hub (bound by the Sentry middleware around this one).
    sentry::configure_scope(|scope| scope.set_tag("request.id", &request_id));
    let method = req.method().as_str().to_owned();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let recorder = req.app_data::<web::Data<PrometheusRecorder>>().cloned();
    let client = crate::client_addr::ClientAddr::of(req.request());
    let span = tracing::info_span!("http", request.id = %request_id, http.method = %method, http.route = %route, client.address = %client);
    let started = Instant::now();

    let mut response = next.call(req).instrument(span.clone()).await?;

    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let labels = [
        ("method", method),
        ("route", route),
        ("status", status.to_string()),
    ];
    let record = || {
        metrics::counter!("http_requests_total", &labels).increment(1);
        metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    };
    // Into the app's own registry (see `startup`), which `/metrics` renders.
    match &recorder {
        Some(recorder) => metrics::with_local_recorder(recorder.get_ref(), record),
        None => record(),
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    span.in_scope(|| {
        tracing::info!(
            http.status = status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    });
    Ok(response)
}
