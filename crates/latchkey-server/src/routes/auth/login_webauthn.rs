//! `POST /v1/login/webauthn/start|finish`: passwordless sign-in with a passkey.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use latchkey_core::auth::PasskeyLoginRequest;
use serde::Deserialize;
use uuid::Uuid;

use super::login::signed_in_response;
use super::{DeliveryMode, TokenResponse};
use crate::client::ClientInfo;
use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;
use crate::routes::me::webauthn::ChallengeBody;
use crate::state::AppState;

/// Start of a passkey sign-in.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyLoginStart {
    /// Accepted and ignored: the options never depend on an address, so they
    /// cannot reveal whether it has an account or passkeys.
    #[serde(default)]
    pub email: Option<String>,
}

/// The authenticator's answer.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyLoginFinish {
    /// From the start call.
    pub challenge_id: Uuid,
    /// The `PublicKeyCredential` from `navigator.credentials.get()`, binary
    /// fields base64url (`userHandle` names the account).
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
    /// Keep the session for 30 days instead of 7.
    #[serde(default)]
    pub remember_me: bool,
    /// `token` (default) or `cookie`, as at `POST /v1/login`.
    #[serde(default)]
    pub mode: DeliveryMode,
}

/// Starts a passwordless sign-in (discoverable passkeys: the browser offers the
/// user's passkeys for this site).
#[utoipa::path(post, path = "/v1/login/webauthn/start", tag = "auth", request_body = PasskeyLoginStart,
    responses(
        (status = 200, description = "Pass `options` to `navigator.credentials.get()`; valid 5 minutes, once", body = ChallengeBody),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: passkeys need `public_url` with a domain name", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn start(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<PasskeyLoginStart>,
) -> Result<ApiJson<ChallengeBody>, ApiError> {
    let _ = body.email;
    let (challenge_id, options) = state
        .services
        .sign_in
        .start_passkey_login(&client.context())
        .await?;
    Ok(ApiJson(ChallengeBody {
        challenge_id,
        options,
    }))
}

/// Finishes a passwordless sign-in.
#[utoipa::path(post, path = "/v1/login/webauthn/finish", tag = "auth", request_body = PasskeyLoginFinish,
    responses(
        (status = 200, description = "Signed in, as `POST /v1/login` in the chosen mode; `amr` is `hwk` or `swk` (synced passkey) plus `mfa`", body = TokenResponse),
        (status = 400, description = "`malformed_request`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token` (challenge unknown, used or expired) or `invalid_mfa_code` (the assertion is wrong, for another origin, from a cloned authenticator, or names no account)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden` (disabled), `email_not_verified`, or `csrf_failed` (cookie mode from a foreign origin)", body = Problem, content_type = "application/problem+json"),
        (status = 423, description = "`account_locked`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn finish(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PasskeyLoginFinish>,
) -> Result<Response, ApiError> {
    super::check_cookie_sign_in(&state, &headers, body.mode)?;
    let request = PasskeyLoginRequest {
        challenge_id: body.challenge_id,
        credential: body.credential,
        remember_me: body.remember_me,
        delivery: body.mode.into(),
    };
    let issued = state
        .services
        .sign_in
        .login_with_passkey(&request, &client.context())
        .await?;
    Ok(signed_in_response(&state, issued, body.mode))
}
