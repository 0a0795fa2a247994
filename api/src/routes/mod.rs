//! HTTP handlers, one module per resource, one file per endpoint; the lists below register
//! every one of them.

pub mod admin;
pub mod auth;
pub mod bookings;
pub mod endpoint;
pub mod health;
pub mod listings;
pub mod openapi_document;
pub mod unmatched;
pub mod webhooks;

use actix_web::web;

pub use endpoint::Endpoint;

/// The endpoints served at the root: health, readiness, metrics, and the OpenAPI document
/// (registered before the `/docs` page, whose own copy of it this one shadows).
pub fn service() -> Vec<Endpoint> {
    vec![
        Endpoint::new(health::health),
        Endpoint::new(health::ready),
        Endpoint::new(health::metrics),
        Endpoint::new(openapi_document::document),
    ]
}

/// The endpoints served under `/api/v1`.
pub fn api_v1() -> Vec<Endpoint> {
    vec![
        Endpoint::new(auth::register::register),
        Endpoint::new(auth::login::login),
        Endpoint::new(auth::refresh::refresh),
        Endpoint::new(auth::logout::logout),
        Endpoint::new(auth::me::me),
        Endpoint::new(listings::create::create),
        Endpoint::new(listings::list::list),
        Endpoint::new(listings::get::get),
        Endpoint::new(listings::update::update),
        Endpoint::new(bookings::create::create),
        Endpoint::new(bookings::list::list),
        Endpoint::new(bookings::get::get),
        Endpoint::new(bookings::cancel::cancel),
        Endpoint::new(webhooks::stripe::stripe),
        Endpoint::new(admin::reports::request_daily),
        Endpoint::new(admin::reports::daily),
        Endpoint::new(admin::schedules::list),
        Endpoint::new(admin::queues::list::list),
        Endpoint::new(admin::queues::pause::pause),
        Endpoint::new(admin::queues::resume::resume),
        Endpoint::new(admin::jobs::list::list),
        Endpoint::new(admin::jobs::retry_many::retry_many),
        Endpoint::new(admin::jobs::discard_many::discard_many),
        Endpoint::new(admin::jobs::retry::retry),
        Endpoint::new(admin::jobs::discard::discard),
    ]
}

/// Every endpoint, at the root and under `/api/v1`.
pub fn all() -> Vec<Endpoint> {
    service().into_iter().chain(api_v1()).collect()
}

/// Registers `endpoints` (for `App::configure` and `Scope::configure`).
pub fn register(endpoints: Vec<Endpoint>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        for endpoint in endpoints {
            endpoint.register(cfg);
        }
    }
}
