//! Sign-in endpoints: login, refresh, logout, and the bodies they share.

pub mod csrf;
pub mod login;
pub mod login_mfa;
pub mod login_webauthn;
pub mod logout;
pub mod password_reset;
pub mod refresh;
pub mod signup;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use latchkey_core::account::User;
use latchkey_core::auth::Issued;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::cookies::{CookieSessions, CookieTokens};
use crate::extract::ApiJson;

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
            roles: u.roles.clone(),
            mfa: MfaState {
                totp: u.mfa.totp,
                webauthn: u.mfa.webauthn,
            },
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// How a sign-in hands its tokens to the client (`mode` at login).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    /// Tokens in the body (native apps, servers).
    #[default]
    Token,
    /// Browsers: the access and refresh tokens in HttpOnly cookies, the CSRF
    /// token in a readable cookie and the body; no refresh token in the body.
    Cookie,
}

impl From<DeliveryMode> for latchkey_core::auth::Delivery {
    fn from(mode: DeliveryMode) -> Self {
        match mode {
            DeliveryMode::Token => Self::Token,
            DeliveryMode::Cookie => Self::Cookie,
        }
    }
}

impl From<latchkey_core::auth::Delivery> for DeliveryMode {
    fn from(delivery: latchkey_core::auth::Delivery) -> Self {
        match delivery {
            latchkey_core::auth::Delivery::Token => Self::Token,
            latchkey_core::auth::Delivery::Cookie => Self::Cookie,
        }
    }
}

/// The `TokenResponse` body of API.md.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// Signed JWT (`typ: at+jwt`).
    pub access_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Single-use refresh token (`lk_rt_...`); omitted in cookie mode, where it
    /// travels only in the HttpOnly refresh cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Seconds until the session ends unless refreshed.
    pub refresh_expires_in: i64,
    /// The session.
    pub session_id: Uuid,
    /// The user.
    pub user: UserBody,
    /// Cookie mode only: the value to send as `X-CSRF-Token` on unsafe requests
    /// (also in the readable CSRF cookie).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

impl From<Issued> for TokenResponse {
    fn from(i: Issued) -> Self {
        Self {
            access_token: i.access_token,
            token_type: "Bearer",
            expires_in: i.expires_in,
            refresh_token: Some(i.refresh_token.to_string()),
            refresh_expires_in: i.refresh_expires_in,
            session_id: i.session_id,
            user: UserBody::from(&i.user),
            csrf_token: None,
        }
    }
}

/// The answer to a successful sign-in or refresh in `mode`: token mode puts the
/// refresh token in the body; cookie mode sets the three cookies and returns the
/// CSRF token instead of the refresh token.
pub fn issued_response(cookies: &CookieSessions, issued: Issued, mode: DeliveryMode) -> Response {
    match mode {
        DeliveryMode::Token => ApiJson(TokenResponse::from(issued)).into_response(),
        DeliveryMode::Cookie => {
            let set = cookies.set_cookies(&CookieTokens {
                access_token: &issued.access_token,
                expires_in: issued.expires_in,
                refresh_token: &issued.refresh_token,
                refresh_expires_in: issued.refresh_expires_in,
                session_id: issued.session_id,
            });
            let csrf = cookies.csrf_token(issued.session_id);
            let mut body = TokenResponse::from(issued);
            body.refresh_token = None;
            body.csrf_token = Some(csrf);
            let mut response = ApiJson(body).into_response();
            for value in set {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
    }
}

/// For a sign-in that will answer in cookie mode: cookie mode must be on and
/// the request must come from an allowed origin (no login CSRF).
pub fn check_cookie_sign_in(
    state: &crate::state::AppState,
    headers: &axum::http::HeaderMap,
    mode: DeliveryMode,
) -> Result<(), crate::error::ApiError> {
    if mode != DeliveryMode::Cookie {
        return Ok(());
    }
    if !state.cookies.enabled() {
        return Err(crate::error::ApiError::Validation(vec![
            crate::error::FieldError {
                field: "mode".into(),
                code: "unsupported".into(),
                message: "Cookie mode is disabled on this server; use token mode.".into(),
            },
        ]));
    }
    state.cookies.check_origin(headers)
}

/// Adds `Set-Cookie` headers deleting the session cookies to `response`.
pub fn clear_cookies(cookies: &CookieSessions, mut response: Response) -> Response {
    for value in cookies.clear_cookies() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}
