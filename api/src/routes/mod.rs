//! HTTP handlers, one module per resource, one file per endpoint.

pub mod auth;
pub mod bookings;
pub mod health;
pub mod listings;

use actix_web::web;

/// Registers every `/api/v1` route.
pub fn api_v1(cfg: &mut web::ServiceConfig) {
    cfg.service(auth::register::register)
        .service(auth::login::login)
        .service(auth::refresh::refresh)
        .service(auth::logout::logout)
        .service(auth::me::me)
        .service(listings::create::create)
        .service(listings::list::list)
        .service(listings::get::get)
        .service(listings::update::update)
        .service(bookings::create::create)
        .service(bookings::list::list)
        .service(bookings::get::get)
        .service(bookings::cancel::cancel);
}
