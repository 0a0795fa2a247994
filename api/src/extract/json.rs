//! `StrictJson<T>`: a JSON body checked the way the contract demands.
//!
//! Wrong `Content-Type` → `415`; over 1 MiB → `413`; not JSON → `400`; unknown, missing or
//! wrongly typed fields and failed rules → `422 validation_failed` naming the fields.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures::StreamExt;
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use validator::Validate;

use crate::idempotency::{self, BodyFingerprint};
use crate::problem::{ApiError, FieldError};

/// The largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A strictly checked JSON body.
#[derive(Debug)]
pub struct StrictJson<T>(pub T);

impl<T: DeserializeOwned + Validate + 'static> FromRequest for StrictJson<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let checked = check_headers(req);
        let mut payload = payload.take();
        let req = req.clone();
        Box::pin(async move {
            checked?;
            let mut body = web::BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| match e {
                    actix_web::error::PayloadError::Overflow => ApiError::PayloadTooLarge {
                        limit: MAX_BODY_BYTES,
                    },
                    other => ApiError::BadRequest(format!("could not read the body: {other}")),
                })?;
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(ApiError::PayloadTooLarge {
                        limit: MAX_BODY_BYTES,
                    });
                }
                body.extend_from_slice(&chunk);
            }
            let value = parse_value(&body)?;
            // Only a request with an Idempotency-Key compares bodies, so only it pays for
            // the hash.
            if req.headers().contains_key(idempotency::HEADER) {
                let fingerprint = fingerprint(&value)?;
                req.extensions_mut().insert(fingerprint);
            }
            Ok(StrictJson(from_value(value)?))
        })
    }
}

fn check_headers(req: &HttpRequest) -> Result<(), ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok());
    let is_json = content_type.is_some_and(|m| {
        m.type_() == mime::APPLICATION
            && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
    });
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES) {
        return Err(ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(())
}

/// Parses and validates a body; public so that other extractors and tests share the rules.
pub fn parse<T: DeserializeOwned + Validate>(body: &[u8]) -> Result<T, ApiError> {
    from_value(parse_value(body)?)
}

/// The body as a JSON object with no NUL characters (PostgreSQL cannot store them in text).
fn parse_value(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    if !value.is_object() {
        return Err(ApiError::invalid("body", "expected a JSON object"));
    }
    if let Some(field) = nul_at(&value, "") {
        return Err(ApiError::invalid(field, NUL_MESSAGE));
    }
    Ok(value)
}

/// What a field holding a NUL character is told.
pub const NUL_MESSAGE: &str = "must not contain the NUL character";

/// The path of the first key or string holding a NUL character, if any.
fn nul_at(value: &serde_json::Value, path: &str) -> Option<String> {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Some(if path.is_empty() {
            "body".into()
        } else {
            path.into()
        }),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_at(v, &join(&i.to_string()))),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some(join(&k.replace('\0', "")))
            } else {
                nul_at(v, &join(k))
            }
        }),
        _ => None,
    }
}

fn fingerprint(value: &serde_json::Value) -> Result<BodyFingerprint, ApiError> {
    let canonical =
        serde_json_canonicalizer::to_vec(value).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(BodyFingerprint(hex::encode(Sha256::digest(&canonical))))
}

fn from_value<T: DeserializeOwned + Validate>(value: serde_json::Value) -> Result<T, ApiError> {
    let parsed: T = serde_path_to_error::deserialize(value).map_err(|e| {
        ApiError::validation(vec![serde_field_error(e.path().to_string(), e.inner())])
    })?;
    parsed
        .validate()
        .map_err(|e| ApiError::validation(validator_errors(&e)))?;
    Ok(parsed)
}

/// Turns a serde error at `path` into a field error, naming the field for missing and
/// unknown fields (which serde reports at their parent).
pub fn serde_field_error(path: String, error: &impl std::fmt::Display) -> FieldError {
    let message = error.to_string();
    let named = message.split('`').nth(1).map(str::to_owned);
    let parent = if path == "." {
        String::new()
    } else {
        format!("{path}.")
    };
    if let Some(name) = named.as_deref() {
        if message.starts_with("missing field") {
            return FieldError::new(format!("{parent}{name}"), "this field is required");
        }
        if message.starts_with("unknown field") {
            // The path already ends with the unknown key.
            let field = if path == "." { name.to_owned() } else { path };
            return FieldError::new(field, "unknown field");
        }
    }
    let field = if path == "." { "body".to_owned() } else { path };
    // serde writes "invalid type: string \"1\", expected i32 at line 1 column 2" for some inputs.
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_owned();
    FieldError::new(field, message)
}

/// Flattens `validator` errors into field errors, sorted by field.
pub fn validator_errors(errors: &validator::ValidationErrors) -> Vec<FieldError> {
    let mut out: Vec<FieldError> = errors
        .field_errors()
        .into_iter()
        .flat_map(|(field, errs)| {
            errs.iter().map(move |e| {
                let message = e
                    .message
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| format!("failed the `{}` rule", e.code));
                FieldError::new(field.to_string(), message)
            })
        })
        .collect();
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Validate)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[validate(range(min = 1, max = 20, message = "must be between 1 and 20"))]
        quantity: i32,
        #[allow(dead_code)]
        note: Option<String>,
    }

    fn field_errors(body: &str) -> Vec<FieldError> {
        match parse::<Body>(body.as_bytes()) {
            Err(ApiError::Validation { errors, .. }) => errors,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn each_kind_of_bad_field_is_named() {
        assert_eq!(field_errors(r#"{"quantity": "1"}"#)[0].field, "quantity");
        assert_eq!(
            field_errors(r#"{}"#)[0],
            FieldError::new("quantity", "this field is required")
        );
        assert_eq!(
            field_errors(r#"{"quantity": 1, "extra": 2}"#)[0],
            FieldError::new("extra", "unknown field")
        );
        assert_eq!(
            field_errors(r#"{"quantity": 21}"#)[0],
            FieldError::new("quantity", "must be between 1 and 20")
        );
        assert_eq!(field_errors(r#"[1]"#)[0].field, "body");
    }

    #[test]
    fn a_nul_character_is_refused_naming_its_field() {
        assert_eq!(
            field_errors("{\"quantity\": 1, \"note\": \"a\\u0000b\"}")[0],
            FieldError::new("note", NUL_MESSAGE)
        );
    }

    fn fingerprint_of(body: &str) -> BodyFingerprint {
        fingerprint(&parse_value(body.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn the_same_members_in_another_order_have_the_same_fingerprint() {
        let one = fingerprint_of(
            r#"{"listing_id": "a", "quantity": 2, "buyer": {"name": "Ann", "tags": [{"y": 1, "x": 2}]}}"#,
        );
        let other = fingerprint_of(
            r#"{"buyer": {"tags": [{"x": 2, "y": 1}], "name": "Ann"}, "quantity": 2, "listing_id": "a"}"#,
        );
        assert_eq!(one, other);
    }

    #[test]
    fn a_different_value_has_a_different_fingerprint() {
        let one = fingerprint_of(r#"{"quantity": 2, "buyer": {"name": "Ann"}}"#);
        for other in [
            r#"{"quantity": 3, "buyer": {"name": "Ann"}}"#,
            r#"{"quantity": 2, "buyer": {"name": "Bob"}}"#,
            r#"{"quantity": 2, "buyer": {"name": "Ann", "note": null}}"#,
            r#"{"quantity": "2", "buyer": {"name": "Ann"}}"#,
        ] {
            assert_ne!(one, fingerprint_of(other), "{other}");
        }
    }

    #[test]
    fn broken_json_is_malformed_not_invalid() {
        assert!(matches!(
            parse::<Body>(b"{\"quantity\": "),
            Err(ApiError::MalformedJson(_))
        ));
    }
}
