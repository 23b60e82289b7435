//! `POST /v1/logout`

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::clear_cookies;
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
/// token unusable at once. A cookie-mode browser also gets its cookies deleted.
#[utoipa::path(post, path = "/v1/logout", tag = "auth", request_body(content = LogoutBody, description = "optional"),
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`csrf_failed` (cookie mode)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    Authenticated(principal): Authenticated,
    client: ClientInfo,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<LogoutBody>,
) -> Result<Response, ApiError> {
    state
        .services
        .sessions
        .logout(&principal, body.all_sessions, &client.context())
        .await?;
    let done = StatusCode::NO_CONTENT.into_response();
    Ok(if state.cookies.any_present(&headers) {
        clear_cookies(&state.cookies, done)
    } else {
        done
    })
}
