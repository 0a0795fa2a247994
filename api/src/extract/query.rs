//! `StrictQuery<T>`: query parameters with the same `422` field errors as bodies.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use futures::future::{Ready, ready};
use serde::de::DeserializeOwned;
use validator::Validate;

use super::json::{NUL_MESSAGE, serde_field_error, validator_errors};
use crate::problem::ApiError;

/// Strictly parsed query parameters.
#[derive(Debug)]
pub struct StrictQuery<T>(pub T);

impl<T: DeserializeOwned + Validate> FromRequest for StrictQuery<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse(req.query_string()).map(StrictQuery))
    }
}

/// Parses and validates a query string.
pub fn parse<T: DeserializeOwned + Validate>(query: &str) -> Result<T, ApiError> {
    // PostgreSQL cannot store NUL characters in text; refuse them by name.
    if let Some((name, _)) = url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, value)| name.contains('\0') || value.contains('\0'))
    {
        return Err(ApiError::invalid(name.replace('\0', ""), NUL_MESSAGE));
    }
    let deserializer =
        serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
    let parsed: T = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        ApiError::validation(vec![serde_field_error(e.path().to_string(), e.inner())])
    })?;
    parsed
        .validate()
        .map_err(|e| ApiError::validation(validator_errors(&e)))?;
    Ok(parsed)
}
