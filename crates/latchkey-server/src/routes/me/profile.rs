//! `GET /v1/me`, `PATCH /v1/me`

use axum::extract::State;
use serde::Deserialize;

use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, Authenticated};
use crate::routes::auth::UserBody;
use crate::routes::input;
use crate::state::AppState;

/// The signed-in user.
#[utoipa::path(get, path = "/v1/me", tag = "me", security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The user", body = UserBody),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_me(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
) -> Result<ApiJson<UserBody>, ApiError> {
    let user = state
        .services
        .accounts
        .profile(p.user_id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    Ok(ApiJson(UserBody::from(&user)))
}

/// Profile changes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchMe {
    /// New display name (at most 100 characters); empty clears it.
    pub name: Option<String>,
}

/// Changes the profile.
#[utoipa::path(patch, path = "/v1/me", tag = "me", security(("bearer" = []), ("cookie" = [])), request_body = PatchMe,
    responses(
        (status = 200, description = "The updated user", body = UserBody),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`csrf_failed`: cookie-authenticated without a valid CSRF token or allowed origin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn patch_me(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    ApiJson(body): ApiJson<PatchMe>,
) -> Result<ApiJson<UserBody>, ApiError> {
    let mut errors = Vec::new();
    if let Some(name) = &body.name {
        input::check_name("name", name.trim(), input::MAX_NAME, &mut errors);
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    if let Some(name) = body.name {
        let name = name.trim();
        let name = (!name.is_empty()).then_some(name);
        state.services.accounts.update_name(p.user_id, name).await?;
    }
    get_me(State(state), Authenticated(p)).await
}
