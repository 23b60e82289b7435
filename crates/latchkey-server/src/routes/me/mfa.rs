//! `/v1/me/mfa/...`: TOTP enrolment and removal, recovery codes.

use axum::extract::State;
use axum::http::StatusCode;
use latchkey_core::mfa::totp;
use serde::{Deserialize, Serialize};

use crate::client::ClientInfo;
use crate::config::{LimitKey, RouteGroup};
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::{ApiJson, Authenticated};
use crate::ratelimit::{slot_of, SlotExtension};
use crate::state::AppState;

/// A started enrolment: show the QR code (or the secret) once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TotpEnrolmentBody {
    /// The seed in base32 (for typing into an app).
    pub secret: String,
    /// `otpauth://totp/...` with issuer and account.
    pub otpauth_uri: String,
    /// The URI as a QR code, an inline SVG document.
    pub qr_svg: String,
}

/// A code from the authenticator app.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    /// Six digits.
    pub code: String,
}

/// The account password, confirming a sensitive change.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfirmation {
    /// The current password.
    pub password: String,
}

/// Recovery codes, shown once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RecoveryCodesBody {
    /// Ten single-use codes (`xxxx-xxxx-xxxx`).
    pub recovery_codes: Vec<String>,
}

fn qr_svg(uri: &str) -> Result<String, ApiError> {
    let code = qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

/// Sensitive MFA changes share the password-flow limit per user.
async fn limit(state: &AppState, user: uuid::Uuid, slot: &SlotExtension) -> Result<(), ApiError> {
    state
        .rate_limits
        .check(
            RouteGroup::Password,
            LimitKey::Identifier,
            &user.to_string(),
            slot_of(slot),
        )
        .await
}

/// Starts a TOTP enrolment (replacing a pending one). Active only after
/// `POST /v1/me/mfa/totp/confirm`.
#[utoipa::path(post, path = "/v1/me/mfa/totp", tag = "me", security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Enrolment pending: scan `qr_svg` or type `secret`", body = TotpEnrolmentBody),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`csrf_failed`, or `reauthentication_required`: the session signed in too long ago to change second factors (`sessions.privileged_max_age_seconds`); sign in again", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: TOTP is already enabled (remove it first)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn start_totp(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    slot: SlotExtension,
) -> Result<ApiJson<TotpEnrolmentBody>, ApiError> {
    limit(&state, p.user_id, &slot).await?;
    let enrolment = state.services.mfa.start_totp(&p).await?;
    Ok(ApiJson(TotpEnrolmentBody {
        qr_svg: qr_svg(&enrolment.otpauth_uri)?,
        secret: enrolment.secret.to_string(),
        otpauth_uri: enrolment.otpauth_uri.to_string(),
    }))
}

/// Activates the pending TOTP enrolment with a current code. Returns the
/// recovery codes once; every other session is signed out and the user mailed.
#[utoipa::path(post, path = "/v1/me/mfa/totp/confirm", tag = "me", security(("bearer" = []), ("cookie" = [])), request_body = TotpCode,
    responses(
        (status = 200, description = "TOTP enabled", body = RecoveryCodesBody),
        (status = 400, description = "`validation_failed`: the code is not 6 digits", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`, or `invalid_mfa_code`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`csrf_failed`, or `reauthentication_required`: the session signed in too long ago to change second factors (`sessions.privileged_max_age_seconds`); sign in again", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: no pending enrolment", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn confirm_totp(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    slot: SlotExtension,
    ApiJson(body): ApiJson<TotpCode>,
) -> Result<ApiJson<RecoveryCodesBody>, ApiError> {
    limit(&state, p.user_id, &slot).await?;
    if !totp::well_formed(&body.code) {
        return Err(ApiError::Validation(vec![FieldError {
            field: "code".into(),
            code: "invalid".into(),
            message: "Enter the 6 digits shown by the authenticator app.".into(),
        }]));
    }
    let codes = state
        .services
        .mfa
        .confirm_totp(&p, &body.code, &client.context())
        .await?;
    Ok(ApiJson(RecoveryCodesBody {
        recovery_codes: codes.iter().map(|c| c.to_string()).collect(),
    }))
}

/// Removes TOTP (and the recovery codes); needs the password. Every other
/// session is signed out and the user mailed.
#[utoipa::path(delete, path = "/v1/me/mfa/totp", tag = "me", security(("bearer" = []), ("cookie" = [])), request_body = PasswordConfirmation,
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "`unauthorized`, or `invalid_credentials` for a wrong password", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`csrf_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no TOTP to remove", body = Problem, content_type = "application/problem+json"),
        (status = 423, description = "`account_locked`: the address is locked by failed sign-ins or password re-checks (these count on the same lockout)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_totp(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    slot: SlotExtension,
    ApiJson(body): ApiJson<PasswordConfirmation>,
) -> Result<StatusCode, ApiError> {
    limit(&state, p.user_id, &slot).await?;
    check_password_length(&state, &body.password)?;
    state
        .services
        .mfa
        .disable_totp(&p, &body.password, &client.context())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces the recovery codes; the old ones stop working. Needs the password.
#[utoipa::path(post, path = "/v1/me/mfa/recovery-codes", tag = "me", security(("bearer" = []), ("cookie" = [])), request_body = PasswordConfirmation,
    responses(
        (status = 200, description = "New codes, shown once", body = RecoveryCodesBody),
        (status = 401, description = "`unauthorized`, or `invalid_credentials` for a wrong password", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`csrf_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: no second factor is enabled", body = Problem, content_type = "application/problem+json"),
        (status = 423, description = "`account_locked`: the address is locked by failed sign-ins or password re-checks (these count on the same lockout)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn regenerate_recovery_codes(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    slot: SlotExtension,
    ApiJson(body): ApiJson<PasswordConfirmation>,
) -> Result<ApiJson<RecoveryCodesBody>, ApiError> {
    limit(&state, p.user_id, &slot).await?;
    check_password_length(&state, &body.password)?;
    let codes = state
        .services
        .mfa
        .regenerate_recovery_codes(&p, &body.password, &client.context())
        .await?;
    Ok(ApiJson(RecoveryCodesBody {
        recovery_codes: codes.iter().map(|c| c.to_string()).collect(),
    }))
}

/// A password far longer than any allowed one is wrong without hashing it.
fn check_password_length(state: &AppState, password: &str) -> Result<(), ApiError> {
    if password.chars().count() > state.config.password.max_length * 4 {
        return Err(ApiError::InvalidCredentials);
    }
    Ok(())
}
