//! Cross-site request forgery: every state-changing dashboard request must come from one
//! of our own pages. Two checks, both required: the `Origin` (or, without one, the
//! `Referer`) names this server, and the form carries the session's CSRF token (field
//! `csrf` or header `X-CSRF-Token`), compared in constant time.
//!
//! The token is derived from the session token (a hash with a fixed label:
//! `session::token_of`), so it needs no storage, and a copy of the `admin_sessions` table
//! (hashes only) cannot forge one.

use actix_web::HttpRequest;
use actix_web::http::header;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::DashboardError;
use super::session::Admin;

/// The header a script may send the token in instead of the form field.
pub const HEADER: &str = "x-csrf-token";

/// Whether `given` equals `expected`, in time independent of where they differ: both are
/// hashed first (so their lengths are equal too), and the digests compared by `subtle`.
pub fn matches(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.ct_eq(&b).into()
}

/// `scheme://host[:port]` of a URL, with the default port left out, as browsers write an
/// `Origin`.
fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let origin = parsed.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// Whether the request says it comes from a page of this server: its `Origin`, or without
/// one its `Referer`, has the scheme and host the request was made to (behind a proxy,
/// those of `Forwarded` / `X-Forwarded-*`). A request with neither is refused.
pub fn same_origin(req: &HttpRequest) -> bool {
    let info = req.connection_info();
    let Some(ours) = origin_of(&format!("{}://{}", info.scheme(), info.host())) else {
        return false;
    };
    let header_text = |name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let theirs = match header_text(header::ORIGIN) {
        Some(origin) => origin_of(&origin),
        None => header_text(header::REFERER).and_then(|r| origin_of(&r)),
    };
    theirs.is_some_and(|theirs| theirs.eq_ignore_ascii_case(&ours))
}

/// A form field that is always there: the token.
#[derive(serde::Deserialize)]
struct TokenField {
    #[serde(default)]
    csrf: Option<String>,
}

/// Checks that a state-changing request of `admin` is not forged, then reads its form
/// (`application/x-www-form-urlencoded`) as `T`. A failed check is `403` and changes
/// nothing.
pub fn verified_form<T: DeserializeOwned>(
    admin: &Admin,
    req: &HttpRequest,
    body: &[u8],
) -> Result<T, DashboardError> {
    if !same_origin(req) {
        return Err(DashboardError::Forbidden(
            "this form was not sent from the dashboard (its Origin is another site's, or missing)"
                .into(),
        ));
    }
    let field = serde_urlencoded::from_bytes::<TokenField>(body)
        .ok()
        .and_then(|f| f.csrf);
    let given = field.or_else(|| {
        req.headers()
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    if !given.is_some_and(|given| matches(&given, &admin.csrf)) {
        return Err(DashboardError::Forbidden(
            "this form's security token is missing or out of date; reload the page and try again"
                .into(),
        ));
    }
    serde_urlencoded::from_bytes(body)
        .map_err(|e| DashboardError::Invalid(format!("the form cannot be read: {e}")))
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;
    use crate::dashboard::session::token_of;

    #[test]
    fn the_token_depends_on_the_session_and_compares_exactly() {
        let token = token_of("session-a");
        assert_eq!(token.len(), 64);
        assert_ne!(token, token_of("session-b"));
        assert!(matches(&token, &token_of("session-a")));
        assert!(!matches(&token[..63], &token));
        assert!(!matches("", &token));
    }

    #[test]
    fn only_this_servers_origin_or_referer_passes() {
        let ours = |h: (&'static str, &'static str)| {
            same_origin(
                &TestRequest::post()
                    .uri("http://127.0.0.1:8080/admin/queues/email/pause")
                    .insert_header(("host", "127.0.0.1:8080"))
                    .insert_header(h)
                    .to_http_request(),
            )
        };
        assert!(ours(("origin", "http://127.0.0.1:8080")));
        assert!(ours(("referer", "http://127.0.0.1:8080/admin?x=1")));
        assert!(!ours(("origin", "http://evil.example")));
        assert!(!ours(("origin", "http://127.0.0.1:8081")));
        assert!(!ours(("origin", "null")));
        assert!(!ours(("referer", "https://127.0.0.1:8080/admin")));
        assert!(!ours(("x-nothing", "1")));
    }
}
