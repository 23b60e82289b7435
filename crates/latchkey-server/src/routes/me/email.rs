//! `POST /v1/me/email`

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use latchkey_core::auth::EmailChangeRequest;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::client::ClientInfo;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, Authenticated};
use crate::routes::auth::signup::Accepted;
use crate::routes::input;
use crate::state::AppState;

/// Email change request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEmail {
    /// The new address (at most 254 characters).
    pub new_email: String,
    /// The current password.
    pub password: String,
}

/// Asks for a new address. A link is mailed to it (24 hours, single use, only
/// the newest request works; confirmed with `POST /v1/email/verify`) and the
/// current address is told. The account keeps its address until then. With
/// enumeration protection (default) a taken address gets the same 202.
#[utoipa::path(post, path = "/v1/me/email", tag = "me", security(("bearer" = []), ("cookie" = [])), request_body = ChangeEmail,
    responses(
        (status = 202, description = "Verification sent to the new address, notice to the current one", body = Accepted),
        (status = 400, description = "`validation_failed`: `new_email` malformed or the current address", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`, or `invalid_credentials` for a wrong password", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`csrf_failed`: cookie-authenticated without a valid CSRF token or allowed origin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the address is taken (only with enumeration protection off)", body = Problem, content_type = "application/problem+json"),
        (status = 423, description = "`account_locked`: the address is locked by failed sign-ins or password re-checks (these count on the same lockout)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`; `Retry-After` says when to retry", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn change_email(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    slot: crate::ratelimit::SlotExtension,
    ApiJson(body): ApiJson<ChangeEmail>,
) -> Result<Response, ApiError> {
    input::flow_user(&state, p.user_id, &slot).await?;
    let mut errors = Vec::new();
    input::check_email_shape(&body.new_email, "new_email", &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if body.password.chars().count() > state.config.password.max_length * 4 {
        return Err(ApiError::InvalidCredentials);
    }
    let request = EmailChangeRequest {
        new_email: body.new_email,
        password: Zeroizing::new(body.password),
    };
    state
        .services
        .accounts
        .request_email_change(
            &p,
            &request,
            state.config.auth.enumeration_protection,
            &client.context(),
        )
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(Accepted {
            status: "verification_sent",
        }),
    )
        .into_response())
}
