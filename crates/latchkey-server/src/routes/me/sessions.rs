//! `GET /v1/me/sessions`, `DELETE /v1/me/sessions/{id}`, `DELETE /v1/me/sessions`

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::client::ClientInfo;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, Authenticated};
use crate::state::AppState;

/// Parsed device of a session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceBody {
    /// `pc`, `smartphone`, `mobilephone`, `appliance`, `crawler` or `UNKNOWN`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Operating system.
    pub os: String,
    /// Browser.
    pub browser: String,
}

/// One live session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionBody {
    /// Session id.
    pub id: Uuid,
    /// Whether this is the session of the calling token.
    pub current: bool,
    /// Sign-in time.
    #[serde(with = "latchkey_core::time_fmt::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Last refresh.
    #[serde(with = "latchkey_core::time_fmt::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen_at: OffsetDateTime,
    /// When it ends unless refreshed (never after its absolute end).
    #[serde(with = "latchkey_core::time_fmt::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// Client IP at sign-in.
    pub ip: Option<String>,
    /// User agent at sign-in.
    pub user_agent: Option<String>,
    /// Parsed user agent.
    pub device: DeviceBody,
    /// Location (not resolved: no geolocation database is configured).
    pub location: Option<String>,
}

/// A page of sessions.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionList {
    /// Live sessions, newest first.
    pub items: Vec<SessionBody>,
}

/// The user's live sessions.
#[utoipa::path(get, path = "/v1/me/sessions", tag = "me", security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Live sessions", body = SessionList),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
) -> Result<ApiJson<SessionList>, ApiError> {
    let sessions = state
        .store
        .live_sessions(p.user_id, state.clock.now())
        .await?;
    let items = sessions
        .into_iter()
        .map(|s| SessionBody {
            current: s.id == p.session_id,
            id: s.id,
            created_at: s.created_at,
            last_seen_at: s.last_seen_at,
            expires_at: s.idle_expires_at.min(s.absolute_expires_at),
            ip: s.ip,
            user_agent: s.user_agent,
            device: DeviceBody {
                kind: s.device.kind,
                os: s.device.os,
                browser: s.device.browser,
            },
            location: None,
        })
        .collect();
    Ok(ApiJson(SessionList { items }))
}

/// Ends one of the user's sessions. Another user's session is `404`, as if it
/// did not exist.
#[utoipa::path(delete, path = "/v1/me/sessions/{id}", tag = "me", security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`csrf_failed`: cookie-authenticated without a valid CSRF token or allowed origin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_one(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: Uuid = id.parse().map_err(|_| ApiError::NotFound)?;
    if state
        .services
        .sessions
        .end_session(&p, id, &client.context())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// `?except_current=`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RevokeAllQuery {
    /// Keep the calling session (default true).
    #[serde(default = "yes")]
    pub except_current: bool,
}

fn yes() -> bool {
    true
}

/// Ends all of the user's sessions, by default except the current one.
#[utoipa::path(delete, path = "/v1/me/sessions", tag = "me", security(("bearer" = []), ("cookie" = [])),
    params(RevokeAllQuery),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, description = "`malformed_request` (bad query)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`csrf_failed`: cookie-authenticated without a valid CSRF token or allowed origin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn revoke_all(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    ApiQuery(q): ApiQuery<RevokeAllQuery>,
) -> Result<StatusCode, ApiError> {
    let keep = q.except_current.then_some(p.session_id);
    state
        .services
        .sessions
        .end_other_sessions(&p, keep, &client.context())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
