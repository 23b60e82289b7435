//! `POST /v1/token/refresh`

use axum::extract::State;
use serde::Deserialize;

use super::TokenResponse;
use crate::client::ClientInfo;
use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Refresh body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    /// The current refresh token (`lk_rt_...`); it stops working now.
    pub refresh_token: String,
}

/// Exchanges a refresh token for a new access token and a new refresh token.
/// Presenting an already-used token revokes the whole session.
#[utoipa::path(post, path = "/v1/token/refresh", tag = "auth", request_body = RefreshBody,
    responses(
        (status = 200, description = "New token pair", body = TokenResponse),
        (status = 401, description = "`invalid_token`: unknown, used, revoked or expired", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<ApiJson<TokenResponse>, ApiError> {
    let issued = state
        .auth
        .refresh(&body.refresh_token, &client.context())
        .await?;
    Ok(ApiJson(issued.into()))
}
