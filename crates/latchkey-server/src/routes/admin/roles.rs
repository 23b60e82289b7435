//! `/v1/admin/roles`: listing, creating and deleting roles.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use latchkey_core::auth::Caller;
use serde::{Deserialize, Serialize};

use super::RoleBody;
use crate::client::ClientInfo;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, Authenticated};
use crate::state::AppState;

/// Every role.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RolesList {
    /// The roles, by name.
    pub items: Vec<RoleBody>,
}

/// Lists the roles (`roles:write`).
#[utoipa::path(get, path = "/v1/admin/roles", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Every role", body = RolesList),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
) -> Result<ApiJson<RolesList>, ApiError> {
    let roles = state.services.admin.roles(Caller::User(&p)).await?;
    Ok(ApiJson(RolesList {
        items: roles.iter().map(RoleBody::from).collect(),
    }))
}

/// A new role.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    /// `^[a-z][a-z0-9_-]{0,63}$`.
    pub name: String,
    /// What it is for (at most 500 characters).
    #[serde(default)]
    pub description: String,
    /// Permission names of API.md (`users:read`, ...).
    pub permissions: Vec<String>,
}

/// Creates a role (`roles:write`).
#[utoipa::path(post, path = "/v1/admin/roles", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    request_body = NewRole,
    responses(
        (status = 201, description = "The new role", body = RoleBody),
        (status = 400, description = "`validation_failed`: bad name or description, unknown permission; `malformed_request`: not JSON, wrong types, unknown fields", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, or `csrf_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the name is taken", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    ApiJson(body): ApiJson<NewRole>,
) -> Result<impl IntoResponse, ApiError> {
    let role = state
        .services
        .admin
        .create_role(
            Caller::User(&p),
            &body.name,
            &body.description,
            &body.permissions,
            &client.context(),
        )
        .await?;
    Ok((StatusCode::CREATED, ApiJson(RoleBody::from(&role))))
}

/// Deletes a role and takes it from its holders (`roles:write`); `admin` is
/// built in (`403`).
#[utoipa::path(delete, path = "/v1/admin/roles/{name}", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(("name" = String, Path, description = "Role name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden` (also for the built-in `admin`), or `csrf_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .admin
        .delete_role(Caller::User(&p), &name, &client.context())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
