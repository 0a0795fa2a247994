//! HS256 access tokens (1 hour) and opaque refresh tokens (7 days, stored hashed).

use anyhow::Context as _;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use orderly_db::users::Role;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// How long an access token lives.
pub const ACCESS_TTL: Duration = Duration::hours(1);
/// How long a refresh token lives.
pub const REFRESH_TTL: Duration = Duration::days(7);
const ISSUER: &str = "orderly";

/// What an access token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user's id.
    pub sub: Uuid,
    /// The user's role when the token was issued.
    pub role: Role,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// Issuer, always `orderly`.
    pub iss: String,
}

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Past its `exp`.
    #[error("the access token has expired")]
    Expired,
    /// Bad signature, bad shape, wrong issuer.
    #[error("the access token is invalid")]
    Invalid,
}

/// Signing and verification keys, built once from `JWT_SECRET`.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

impl TokenKeys {
    /// Keys for an HS256 secret.
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Issues an access token for a user.
    pub fn issue_access(
        &self,
        user_id: Uuid,
        role: Role,
        now: DateTime<Utc>,
    ) -> anyhow::Result<String> {
        self.sign(&AccessClaims {
            sub: user_id,
            role,
            iat: now.timestamp(),
            exp: (now + ACCESS_TTL).timestamp(),
            iss: ISSUER.to_owned(),
        })
    }

    /// Signs arbitrary claims (tests use it to forge expired tokens with the real key).
    pub fn sign(&self, claims: &AccessClaims) -> anyhow::Result<String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .context("signing an access token")
    }

    /// Verifies an access token.
    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, TokenError> {
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

/// A new random refresh token (256 bits, URL-safe).
pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored for a refresh token: its SHA-256, hex.
pub fn hash_refresh_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_token_verifies_and_a_forged_one_does_not() {
        let keys = TokenKeys::new(&[7u8; 32]);
        let id = Uuid::new_v4();
        let token = keys.issue_access(id, Role::Provider, Utc::now()).unwrap();
        let claims = keys.verify_access(&token).unwrap();
        assert_eq!((claims.sub, claims.role), (id, Role::Provider));

        let other = TokenKeys::new(&[8u8; 32]);
        assert_eq!(
            other.verify_access(&token).unwrap_err(),
            TokenError::Invalid
        );
    }

    #[test]
    fn an_old_token_is_expired() {
        let keys = TokenKeys::new(&[7u8; 32]);
        let token = keys
            .issue_access(
                Uuid::new_v4(),
                Role::Customer,
                Utc::now() - Duration::hours(2),
            )
            .unwrap();
        assert_eq!(keys.verify_access(&token).unwrap_err(), TokenError::Expired);
    }
}
