//! `/v1/admin/users`: listing, reading, disabling, enabling, unlocking and
//! signing out accounts, and setting their roles.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use latchkey_core::auth::Caller;
use serde::{Deserialize, Serialize};

use super::AdminUserBody;
use crate::client::ClientInfo;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, Authenticated};
use crate::state::AppState;

/// `?query=&cursor=&limit=`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UsersQuery {
    /// An exact email (any case), a user id, or the start of a display name
    /// (case-sensitive); empty or absent: every account.
    pub query: Option<String>,
    /// The `next_cursor` of the previous page (valid with the same `query` only).
    pub cursor: Option<String>,
    /// Accounts per page: 1 to 200 (default 50); anything else is `400`.
    pub limit: Option<u32>,
}

/// A page of accounts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsersPage {
    /// The accounts, oldest first.
    pub items: Vec<AdminUserBody>,
    /// The next page's cursor; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Lists or searches accounts (`users:read`).
#[utoipa::path(get, path = "/v1/admin/users", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(UsersQuery),
    responses(
        (status = 200, description = "A page of accounts", body = UsersPage),
        (status = 400, description = "`malformed_request`: bad query, cursor or limit", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller's current roles do not grant `users:read`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    ApiQuery(q): ApiQuery<UsersQuery>,
) -> Result<ApiJson<UsersPage>, ApiError> {
    let page = state
        .services
        .admin
        .users(
            Caller::User(&p),
            q.query.as_deref(),
            q.cursor.as_deref(),
            q.limit,
        )
        .await?;
    Ok(ApiJson(UsersPage {
        items: page.items.iter().map(AdminUserBody::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One account (`users:read`).
#[utoipa::path(get, path = "/v1/admin/users/{id}", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        (status = 200, description = "The account", body = AdminUserBody),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    Path(id): Path<String>,
) -> Result<ApiJson<AdminUserBody>, ApiError> {
    let user = state
        .services
        .admin
        .user(Caller::User(&p), super::path_id(&id)?)
        .await?;
    Ok(ApiJson(AdminUserBody::from(&user)))
}

/// Disables an account (`users:write`): every session revoked at once, its
/// access tokens refused, sign-in answers `403 forbidden` after a correct
/// password. The last enabled `admin` cannot be disabled (`409`).
#[utoipa::path(post, path = "/v1/admin/users/{id}/disable", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        (status = 200, description = "The disabled account", body = AdminUserBody),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, or `csrf_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the last enabled administrator", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn disable(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<ApiJson<AdminUserBody>, ApiError> {
    let user = state
        .services
        .admin
        .disable(Caller::User(&p), super::path_id(&id)?, &client.context())
        .await?;
    Ok(ApiJson(AdminUserBody::from(&user)))
}

/// Enables a disabled account (`users:write`).
#[utoipa::path(post, path = "/v1/admin/users/{id}/enable", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        (status = 200, description = "The enabled account", body = AdminUserBody),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, or `csrf_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn enable(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<ApiJson<AdminUserBody>, ApiError> {
    let user = state
        .services
        .admin
        .enable(Caller::User(&p), super::path_id(&id)?, &client.context())
        .await?;
    Ok(ApiJson(AdminUserBody::from(&user)))
}

/// Clears the sign-in lockout of the account's address (`users:write`).
#[utoipa::path(post, path = "/v1/admin/users/{id}/unlock", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        (status = 204, description = "Unlocked (or nothing was locked)"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, or `csrf_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn unlock(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .admin
        .unlock(Caller::User(&p), super::path_id(&id)?, &client.context())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes every session of the account (`users:write`).
#[utoipa::path(post, path = "/v1/admin/users/{id}/logout", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        (status = 204, description = "Every session revoked"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, or `csrf_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .admin
        .logout_everywhere(Caller::User(&p), super::path_id(&id)?, &client.context())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `{roles: [...]}`
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRoles {
    /// Every role the account is to hold (at most 32; duplicates ignored).
    pub roles: Vec<String>,
}

/// Replaces the account's roles (`roles:assign`). Tokens issued afterwards
/// carry them; the admin API and introspection apply them at once.
#[utoipa::path(put, path = "/v1/admin/users/{id}/roles", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Account id")), request_body = SetRoles,
    responses(
        (status = 200, description = "The account with its new roles", body = AdminUserBody),
        (status = 400, description = "`validation_failed`: an unknown role, or too many; `malformed_request`: not JSON, wrong types, unknown fields", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, or `csrf_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: it would take `admin` from the last enabled administrator", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_roles(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetRoles>,
) -> Result<ApiJson<AdminUserBody>, ApiError> {
    let user = state
        .services
        .admin
        .set_roles(
            Caller::User(&p),
            super::path_id(&id)?,
            &body.roles,
            &client.context(),
        )
        .await?;
    Ok(ApiJson(AdminUserBody::from(&user)))
}

/// Deletes the account with everything held under it (`users:write`):
/// sessions end at once on every node. Until scheduled erasure exists this is
/// immediate. The last enabled `admin`, and the caller's own account (use
/// `DELETE /v1/me`), are refused with `409`.
#[utoipa::path(delete, path = "/v1/admin/users/{id}", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Account id")),
    responses(
        (status = 202, description = "Deleted"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, or `csrf_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the last enabled administrator, or the caller's own account", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .admin
        .delete(Caller::User(&p), super::path_id(&id)?, &client.context())
        .await?;
    Ok(StatusCode::ACCEPTED)
}

/// An account to create.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    /// Its address.
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// The first password (the sign-up rules apply). Without one, the address
    /// is mailed a set-password link valid 72 hours.
    pub password: Option<String>,
    /// Role names; giving any also needs `roles:assign`.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Whether the address counts as verified at once (default `false`).
    #[serde(default)]
    pub email_verified: bool,
}

/// Creates an account (`users:write`; with `roles`, also `roles:assign`).
#[utoipa::path(post, path = "/v1/admin/users", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    request_body = NewUserBody,
    responses(
        (status = 201, description = "The new account", body = AdminUserBody),
        (status = 400, description = "`validation_failed`: email, name, password or roles (`unknown_role`); `malformed_request`: not JSON, wrong types, unknown fields", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, or `csrf_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the address is taken", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    ApiJson(body): ApiJson<NewUserBody>,
) -> Result<(StatusCode, ApiJson<AdminUserBody>), ApiError> {
    let account = crate::routes::input::new_account(body.into(), state.config.password.max_length)?;
    let created = state
        .services
        .admin
        .create_user(Caller::User(&p), &account, &client.context())
        .await?
        .map_err(|weak| crate::routes::me::password::weak_password_error("password", weak))?;
    Ok((StatusCode::CREATED, ApiJson(AdminUserBody::from(&created))))
}

impl From<NewUserBody> for crate::routes::input::AccountInput {
    fn from(b: NewUserBody) -> Self {
        Self {
            email: b.email,
            name: b.name,
            password: b.password.map(zeroize::Zeroizing::new),
            roles: b.roles,
            email_verified: b.email_verified,
        }
    }
}

/// What to change of an account; absent fields stay as they are.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUserBody {
    /// New display name (at most 100 characters); empty clears it.
    pub name: Option<String>,
    /// New address: effective at once, without the owner's confirmation;
    /// the old address is told.
    pub email: Option<String>,
    /// Whether the address counts as verified (with a new `email` and no
    /// value here: `true`).
    pub email_verified: Option<bool>,
}

/// Changes an account's name, address or verified state (`users:write`).
#[utoipa::path(patch, path = "/v1/admin/users/{id}", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Account id")),
    request_body = PatchUserBody,
    responses(
        (status = 200, description = "The account", body = AdminUserBody),
        (status = 400, description = "`validation_failed`: email or name; `malformed_request`: not JSON, wrong types, unknown fields", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, or `csrf_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: another account has the address", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn patch(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchUserBody>,
) -> Result<ApiJson<AdminUserBody>, ApiError> {
    let id = super::path_id(&id)?;
    let mut errors = Vec::new();
    if let Some(email) = &body.email {
        crate::routes::input::check_email_shape(email, "email", &mut errors);
    }
    let name = body.name.as_deref().map(str::trim);
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        crate::routes::input::check_name("name", name, crate::routes::input::MAX_NAME, &mut errors);
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let change = latchkey_core::auth::ChangeAccount {
        name: name.map(|n| (!n.is_empty()).then(|| n.to_owned())),
        email: body.email,
        email_verified: body.email_verified,
    };
    let changed = state
        .services
        .admin
        .change_user(Caller::User(&p), id, &change, &client.context())
        .await?;
    Ok(ApiJson(AdminUserBody::from(&changed)))
}
