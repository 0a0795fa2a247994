//! An endpoint: a handler with the path and methods its `#[utoipa::path]` documents, so that
//! one list both registers the routes and says which methods each path answers.

use actix_web::dev::HttpServiceFactory;
use actix_web::http::Method;
use actix_web::web;
use utoipa::openapi::path::HttpMethod;

/// A handler with its documented path and methods.
pub struct Endpoint {
    /// The full documented path, with `{name}` for each parameter (`/api/v1/listings/{id}`).
    pub path: String,
    /// The methods the handler answers.
    pub methods: Vec<Method>,
    register: Box<dyn FnOnce(&mut web::ServiceConfig)>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("path", &self.path)
            .field("methods", &self.methods)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// An actix-web handler (`#[get]`, `#[post]`...) that has a `#[utoipa::path]` above its
    /// route attribute; without one it does not compile.
    pub fn new<H: HttpServiceFactory + utoipa::Path + 'static>(handler: H) -> Self {
        Self {
            path: H::path(),
            methods: H::methods().iter().map(method).collect(),
            register: Box::new(move |cfg| {
                cfg.service(handler);
            }),
        }
    }

    /// Registers the handler on `cfg`.
    pub fn register(self, cfg: &mut web::ServiceConfig) {
        (self.register)(cfg);
    }
}

fn method(method: &HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}
