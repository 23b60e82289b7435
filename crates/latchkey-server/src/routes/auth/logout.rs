//! `POST /v1/logout`

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::client::ClientInfo;
use crate::error::{ApiError, Problem};
use crate::extract::{Authenticated, OptionalJson};
use crate::state::AppState;

/// Logout body (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutBody {
    /// End every session of the user, not just this one.
    #[serde(default)]
    pub all_sessions: bool,
}

/// Ends the current session (or all of them) and makes the presented access
/// token unusable at once.
#[utoipa::path(post, path = "/v1/logout", tag = "auth", request_body(content = LogoutBody, description = "optional"),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    client: ClientInfo,
    OptionalJson(body): OptionalJson<LogoutBody>,
) -> Result<StatusCode, ApiError> {
    state
        .auth
        .logout(&principal, body.all_sessions, &client.context())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
