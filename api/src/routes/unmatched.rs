//! The answer to a request that no route takes: `405` with `Allow` when its path is served
//! under other methods, `404` otherwise.

use actix_web::dev::ResourceDef;
use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse};

use crate::problem::ApiError;
use crate::routes::Endpoint;

/// Each served path with the methods it answers.
#[derive(Debug)]
pub struct Unmatched {
    paths: Vec<(ResourceDef, Vec<Method>)>,
}

impl Unmatched {
    /// The paths and methods of `endpoints`.
    pub fn new<'a>(endpoints: impl IntoIterator<Item = &'a Endpoint>) -> Self {
        Self {
            paths: endpoints
                .into_iter()
                .map(|e| (ResourceDef::new(e.path.as_str()), e.methods.clone()))
                .collect(),
        }
    }

    /// The problem answered to `req`.
    pub fn answer(&self, req: &HttpRequest) -> HttpResponse {
        let mut allowed: Vec<Method> = self
            .paths
            .iter()
            .filter(|(path, _)| path.is_match(req.path()))
            .flat_map(|(_, methods)| methods.iter().cloned())
            .collect();
        if allowed.is_empty() {
            return HttpResponse::from_error(ApiError::NotFound("no such resource".into()));
        }
        allowed.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        allowed.dedup();
        HttpResponse::from_error(ApiError::MethodNotAllowed { allowed })
    }
}
