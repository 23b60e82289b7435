//! `POST /v1/login/mfa`: the second step of a sign-in.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use latchkey_core::auth::{AuthError, MfaLoginRequest, MfaMethod};
use latchkey_core::mfa::totp;
use serde::Deserialize;

use super::login::signed_in_response;
use super::{DeliveryMode, TokenResponse};
use crate::client::ClientInfo;
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Longest `mfa_token` or code looked at (anything longer is refused unread).
const MAX_INPUT: usize = 128;

/// A second factor.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MfaMethodBody {
    /// 6-digit code from an authenticator app.
    Totp,
    /// One of the recovery codes (`xxxx-xxxx-xxxx`, any case, dashes optional).
    RecoveryCode,
    /// A passkey: `credential` is the `PublicKeyCredential` returned by
    /// `navigator.credentials.get()` with the `webauthn` options of the login
    /// answer.
    Webauthn,
}

/// The second step.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginMfaBody {
    /// The `mfa_token` from `POST /v1/login`.
    pub mfa_token: String,
    /// Which factor answers.
    pub method: MfaMethodBody,
    /// The code (`totp`, `recovery_code`).
    #[serde(default)]
    pub code: String,
    /// The authenticator's answer (`webauthn`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub credential: Option<serde_json::Value>,
}

/// Finishes a sign-in with a TOTP code, a passkey or a recovery code. Tokens come back the way
/// the password step asked for (token or cookie mode).
#[utoipa::path(post, path = "/v1/login/mfa", tag = "auth", request_body = LoginMfaBody,
    responses(
        (status = 200, description = "Signed in (as `POST /v1/login` in the mode chosen there); `amr` lists `pwd`, `otp`, `mfa` (TOTP), `pwd`, `hwk` or `swk`, `mfa` (passkey) or `pwd`, `mfa`, `rc` (recovery code)", body = TokenResponse),
        (status = 400, description = "`malformed_request` or `validation_failed` (a TOTP code is 6 digits)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_mfa_code` (wrong, reused or expired code; counts toward the challenge's 5 tries and the account's lockout) or `invalid_token` (mfa_token unknown, used, expired or out of tries)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden` (account disabled) or `csrf_failed` (cookie mode from a foreign origin)", body = Problem, content_type = "application/problem+json"),
        (status = 423, description = "`account_locked`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn login_mfa(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    ApiJson(body): ApiJson<LoginMfaBody>,
) -> Result<Response, ApiError> {
    let mut errors = Vec::new();
    if body.mfa_token.is_empty() || body.mfa_token.len() > MAX_INPUT {
        errors.push(FieldError {
            field: "mfa_token".into(),
            code: "invalid".into(),
            message: "Send the mfa_token returned by POST /v1/login.".into(),
        });
    }
    let code_ok = match body.method {
        MfaMethodBody::Totp => totp::well_formed(&body.code),
        MfaMethodBody::RecoveryCode => !body.code.is_empty() && body.code.len() <= MAX_INPUT,
        MfaMethodBody::Webauthn => body
            .credential
            .as_ref()
            .is_some_and(serde_json::Value::is_object),
    };
    if !code_ok {
        errors.push(FieldError {
            field: if matches!(body.method, MfaMethodBody::Webauthn) {
                "credential".into()
            } else {
                "code".into()
            },
            code: "invalid".into(),
            message: "A TOTP code is 6 digits; a recovery code looks like xxxx-xxxx-xxxx; a passkey answer is the credential object.".into(),
        });
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let request = MfaLoginRequest {
        // Needed only when the password step chose cookie mode (core checks).
        cookie_origin_allowed: state.cookies.origin_allowed(&headers),
        mfa_token: zeroize::Zeroizing::new(body.mfa_token),
        method: match body.method {
            MfaMethodBody::Totp => MfaMethod::Totp,
            MfaMethodBody::RecoveryCode => MfaMethod::RecoveryCode,
            MfaMethodBody::Webauthn => MfaMethod::Webauthn,
        },
        code: zeroize::Zeroizing::new(body.code),
        credential: body.credential,
    };
    let result = state
        .services
        .sign_in
        .login_mfa(&request, &client.context())
        .await;
    if matches!(result, Err(AuthError::ForeignOrigin)) {
        // Logged and answered as every refused origin is.
        state.cookies.check_origin(&headers)?;
    }
    let (issued, mode) = result?;
    Ok(signed_in_response(&state, issued, DeliveryMode::from(mode)))
}
