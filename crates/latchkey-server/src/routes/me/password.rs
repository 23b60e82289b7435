//! `POST /v1/me/password`

use axum::extract::State;
use axum::http::StatusCode;
use latchkey_core::auth::WeakPassword;
use serde::Deserialize;

use crate::client::ClientInfo;
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::{ApiJson, Authenticated};
use crate::state::AppState;

/// Password change.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// The password in use now.
    pub current_password: String,
    /// The new password (12 to 128 characters by default).
    pub new_password: String,
}

/// The field errors for a refused new password, one per failed rule (shared
/// with sign-up and reset).
pub fn weak_password_error(field: &str, weak: WeakPassword) -> ApiError {
    ApiError::Validation(
        weak.0
            .into_iter()
            .map(|p| FieldError {
                field: field.to_owned(),
                code: p.code.to_owned(),
                message: p.message,
            })
            .collect(),
    )
}

/// Replaces the password; every other session of the user is revoked.
#[utoipa::path(post, path = "/v1/me/password", tag = "me", security(("bearer" = []), ("cookie" = [])), request_body = ChangePassword,
    responses(
        (status = 204, description = "Changed; other sessions revoked"),
        (status = 400, description = "`validation_failed`: the new password breaks the policy (`too_short`, `too_long`, `weak`, `missing_*`, `reused`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`, or `invalid_credentials` for a wrong current password", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`csrf_failed`: cookie-authenticated without a valid CSRF token or allowed origin", body = Problem, content_type = "application/problem+json"),
        (status = 423, description = "`account_locked`: the address is locked by failed sign-ins or password re-checks (these count on the same lockout)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`; `Retry-After` says when to retry", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    slot: crate::ratelimit::SlotExtension,
    ApiJson(body): ApiJson<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    crate::routes::input::flow_user(&state, p.user_id, &slot).await?;
    let cfg = &state.config.password;
    if body.current_password.chars().count() > cfg.max_length * 4 {
        return Err(ApiError::InvalidCredentials);
    }
    let result = state
        .services
        .passwords
        .change_password(
            &p,
            &body.current_password,
            &body.new_password,
            &client.context(),
        )
        .await?;
    match result {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(weak) => Err(weak_password_error("new_password", weak)),
    }
}
