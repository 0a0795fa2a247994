//! The dashboard's script and styles, compiled into the binary and served from `/admin`
//! itself (the pages' Content-Security-Policy allows nothing else).

use actix_web::HttpResponse;
use actix_web::http::header::{self, HeaderValue};

/// `GET /admin/static/dashboard.js`: confirmations, auto-refresh, the chart.
pub async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        ))
        .body(include_str!("../../static/admin/dashboard.js"))
}

/// `GET /admin/static/dashboard.css`.
pub async fn styles() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/css; charset=utf-8"),
        ))
        .body(include_str!("../../static/admin/dashboard.css"))
}
