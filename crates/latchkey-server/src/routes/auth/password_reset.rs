//! `POST /v1/password/forgot`, `POST /v1/password/reset`

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::client::ClientInfo;
use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;
use crate::ratelimit::SlotExtension;
use crate::routes::input;
use crate::routes::me::password::weak_password_error;
use crate::state::AppState;

/// Forgot-password body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotBody {
    /// The account's address (any case).
    pub email: String,
}

/// Reset body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    /// The `token=` of the mailed link (`lk_pr_...`).
    pub token: String,
    /// The new password (the password rules apply).
    pub new_password: String,
}

/// Longest token looked at.
const MAX_TOKEN: usize = 128;

/// The `status` of every forgot-password answer: the same whether or not the
/// address has an account.
pub const FORGOT_STATUS: &str = "reset_sent_if_registered";

/// `{"status":"reset_sent_if_registered"}`
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ForgotAccepted {
    /// Always `reset_sent_if_registered`.
    #[schema(example = "reset_sent_if_registered")]
    pub status: &'static str,
}

/// Mails a reset link if the address has an account. Always 202, at once: the
/// lookup and the mail happen after the answer, so neither the answer nor its
/// timing says whether the address exists.
#[utoipa::path(post, path = "/v1/password/forgot", tag = "auth", request_body = ForgotBody,
    responses(
        (status = 202, description = "Accepted (whatever the address)", body = ForgotAccepted),
        (status = 400, description = "`validation_failed`: not an email address", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited` (per IP and per address)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn forgot(
    State(state): State<AppState>,
    slot: SlotExtension,
    ApiJson(body): ApiJson<ForgotBody>,
) -> Result<Response, ApiError> {
    input::flow_address(&state, &body.email, &slot).await?;
    let passwords = state.services.passwords.clone();
    // After the answer, bounded; the request's span goes along.
    state
        .services
        .background
        .spawn("forgot_password", async move {
            match passwords.forgot_password(&body.email).await {
                Ok(()) => tracing::debug!("forgot-password request processed"),
                Err(e) => tracing::warn!(error = %e, "password reset mail not issued"),
            }
        });
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(ForgotAccepted {
            status: FORGOT_STATUS,
        }),
    )
        .into_response())
}

/// Sets a new password with a mailed reset token; every session of the user is
/// revoked, the address's lockout cleared, and a confirmation mailed.
#[utoipa::path(post, path = "/v1/password/reset", tag = "auth", request_body = ResetBody,
    responses(
        (status = 204, description = "Password changed; every session revoked"),
        (status = 400, description = "`validation_failed`: the new password breaks the policy (the token stays usable)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`invalid_token`: unknown, used, expired or superseded by a newer request", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn reset(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<ResetBody>,
) -> Result<StatusCode, ApiError> {
    if body.token.is_empty() || body.token.len() > MAX_TOKEN {
        return Err(ApiError::InvalidToken);
    }
    match state
        .services
        .passwords
        .reset_password(&body.token, &body.new_password, &client.context())
        .await?
    {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(weak) => Err(weak_password_error("new_password", weak)),
    }
}
