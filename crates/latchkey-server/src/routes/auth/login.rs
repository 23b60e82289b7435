//! `POST /v1/login`

use axum::extract::State;
use latchkey_core::account::normalize_email;
use latchkey_core::auth::{Issued, LoginOutcome, LoginRequest};
use serde::{Deserialize, Serialize};

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::{issued_response, DeliveryMode, TokenResponse};
use crate::client::ClientInfo;
use crate::config::{LimitKey, RouteGroup};
use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;
use crate::ratelimit::{slot_of, SlotExtension};
use crate::routes::input;
use crate::state::AppState;

/// Login body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    /// The account's email (any case; surrounding spaces ignored).
    pub email: String,
    /// The password.
    pub password: String,
    /// Keep the session for 30 days instead of 7.
    #[serde(default)]
    pub remember_me: bool,
    /// `token` (default): tokens in the body. `cookie` (browsers): tokens in
    /// HttpOnly cookies, CSRF token in the body and a readable cookie.
    #[serde(default)]
    pub mode: DeliveryMode,
}

/// Signs in with email and password. Unknown email and wrong password are the
/// same `401 invalid_credentials`, after the same work.
#[utoipa::path(post, path = "/v1/login", tag = "auth", request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in (`TokenResponse`; in cookie mode `refresh_token` is omitted, `csrf_token` is set, and `Set-Cookie` carries the session, refresh and CSRF cookies), or, when the account has a second factor, `MfaRequired`: finish with `POST /v1/login/mfa`", body = TokenResponse),
        (status = 400, description = "`malformed_request` or `validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_credentials`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`email_not_verified` or `forbidden` (disabled), only after a correct password; `csrf_failed` for a cookie-mode login from an origin that is not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 423, description = "`account_locked`: too many failed sign-ins for this address (or device); `retry_after` and `Retry-After` say when it ends. Same answer for known and unknown addresses, before any password check", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (per IP and per address, or as many attempts for this address are being checked right now as the lockout allows); `Retry-After` says when to retry", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    slot: SlotExtension,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    super::check_cookie_sign_in(&state, &headers, body.mode)?;
    let mut errors = Vec::new();
    input::check_email_shape(&body.email, "email", &mut errors);
    input::check_text(
        "password",
        &body.password,
        state.config.password.max_length,
        false,
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    // Counted per address whether or not an account has it (no enumeration);
    // a browser with a valid device cookie for the address counts on its own
    // key, so an attacker exhausting the address's budget never shuts out a
    // device that signed in before.
    let device_token = state.cookies.device_token(&headers).map(str::to_owned);
    let email = normalize_email(&body.email);
    let identity = device_token
        .as_deref()
        .and_then(|t| state.services.sign_in.device_key(&email, t))
        .map_or(email, |key| {
            format!("device:{}", latchkey_core::hex::encode(&key))
        });
    state
        .rate_limits
        .check(
            RouteGroup::Login,
            LimitKey::Identifier,
            &identity,
            slot_of(&slot),
        )
        .await?;
    let request = LoginRequest {
        email: body.email,
        password: zeroize::Zeroizing::new(body.password),
        remember_me: body.remember_me,
        device_token,
        delivery: body.mode.into(),
    };
    match state
        .services
        .sign_in
        .login(&request, &client.context())
        .await?
    {
        LoginOutcome::SignedIn(issued) => Ok(signed_in_response(&state, *issued, body.mode)),
        LoginOutcome::MfaRequired(pending) => Ok(ApiJson(MfaRequired {
            mfa_required: true,
            mfa_token: pending.mfa_token.to_string(),
            methods: pending.methods,
            expires_in: pending.expires_in,
            webauthn: pending.webauthn,
        })
        .into_response()),
    }
}

/// The answer to a correct password when the account has a second factor.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MfaRequired {
    /// Always `true`.
    pub mfa_required: bool,
    /// Single-use token for `POST /v1/login/mfa` (5 minutes, 5 wrong codes).
    pub mfa_token: String,
    /// Factors that can answer: `totp`, `webauthn`, `recovery_code`.
    pub methods: Vec<&'static str>,
    /// Seconds until `mfa_token` expires.
    pub expires_in: i64,
    /// When the account has passkeys: the options for
    /// `navigator.credentials.get()` (answer with method `webauthn`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub webauthn: Option<serde_json::Value>,
}

/// Tokens in `mode`, plus a fresh lockout device cookie: this browser's
/// failures will be counted apart from the address's.
pub(crate) fn signed_in_response(state: &AppState, issued: Issued, mode: DeliveryMode) -> Response {
    let device = state.services.sign_in.device_token(&issued.user.email);
    let mut response = issued_response(&state.cookies, issued, mode);
    if let Some(cookie) = state.cookies.device_cookie(&device) {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, cookie);
    }
    response
}
