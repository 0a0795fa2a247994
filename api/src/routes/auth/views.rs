//! What auth endpoints answer with.

use chrono::{DateTime, Utc};
use orderly_db::users::{self, Role};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// A user as the API shows it (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Id.
    pub id: Uuid,
    /// Lower-cased e-mail.
    pub email: String,
    /// Display name.
    pub name: String,
    /// E.164 phone number, if given.
    #[schema(required = true)]
    pub phone: Option<String>,
    /// `customer`, `provider` or `admin`.
    pub role: Role,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

impl From<users::Model> for UserView {
    fn from(user: users::Model) -> Self {
        Self {
            id: user.id,
            email: user.email,
            name: user.name,
            phone: user.phone,
            role: user.role,
            created_at: user.created_at.into(),
        }
    }
}

/// A signed-in session: the user and both tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    /// The user.
    pub user: UserView,
    /// Access token (JWT, 1 hour).
    pub access: String,
    /// Refresh token (7 days, single use).
    pub refresh: String,
}

/// A new token pair.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    /// Access token (JWT, 1 hour).
    pub access: String,
    /// Refresh token (7 days, single use).
    pub refresh: String,
}
