//! Sign-in endpoints: login, refresh, logout, and the bodies they share.

pub mod login;
pub mod logout;
pub mod refresh;
pub mod signup;

use latchkey_core::account::User;
use latchkey_core::auth::Issued;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// MFA state of a user (`GET /v1/me`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MfaState {
    /// TOTP enrolled.
    pub totp: bool,
    /// Number of passkeys.
    pub webauthn: u32,
}

/// The `User` body of API.md.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserBody {
    /// UUIDv7.
    pub id: Uuid,
    /// The address as given.
    pub email: String,
    /// Whether it is verified.
    pub email_verified: bool,
    /// Display name.
    pub name: Option<String>,
    /// Roles.
    pub roles: Vec<String>,
    /// Second factors.
    pub mfa: MfaState,
    /// RFC 3339.
    #[serde(with = "latchkey_core::time_fmt::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// RFC 3339.
    #[serde(with = "latchkey_core::time_fmt::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
}

impl From<&User> for UserBody {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            email_verified: u.email_verified_at.is_some(),
            name: u.name.clone(),
            roles: Vec::new(),
            mfa: MfaState {
                totp: false,
                webauthn: 0,
            },
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// The `TokenResponse` body of API.md (token mode).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// Signed JWT (`typ: at+jwt`).
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Single-use refresh token (`lk_rt_...`).
    pub refresh_token: String,
    /// Seconds until the session ends unless refreshed.
    pub refresh_expires_in: i64,
    /// The session.
    pub session_id: Uuid,
    /// The user.
    pub user: UserBody,
}

impl From<Issued> for TokenResponse {
    fn from(i: Issued) -> Self {
        Self {
            access_token: i.access_token,
            token_type: "Bearer",
            expires_in: i.expires_in,
            refresh_token: i.refresh_token.to_string(),
            refresh_expires_in: i.refresh_expires_in,
            session_id: i.session_id,
            user: UserBody::from(&i.user),
        }
    }
}
