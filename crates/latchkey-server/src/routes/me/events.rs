//! `GET /v1/me/events`: the signed-in user's own security events.

use axum::extract::State;
use serde::Deserialize;

use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, Authenticated};
use crate::routes::events::EventsPage;
use crate::state::AppState;

/// `?cursor=&limit=&type=`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OwnEventsQuery {
    /// Only events of this type (docs/events.md).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// The `next_cursor` of the previous page (valid with the same `type` only).
    pub cursor: Option<String>,
    /// Events per page: 1 to 200 (default 50); anything else is `400`.
    pub limit: Option<u32>,
}

/// The caller's own security events, newest first (their IP and user agent
/// included: they are the user's own).
#[utoipa::path(get, path = "/v1/me/events", tag = "me", security(("bearer" = []), ("cookie" = [])),
    params(OwnEventsQuery),
    responses(
        (status = 200, description = "A page of the caller's events, newest first", body = EventsPage),
        (status = 400, description = "`malformed_request`: an unknown type, a bad cursor or limit", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    ApiQuery(q): ApiQuery<OwnEventsQuery>,
) -> Result<ApiJson<EventsPage>, ApiError> {
    let page = state
        .services
        .sessions
        .own_events(&p, q.kind.as_deref(), q.cursor.as_deref(), q.limit)
        .await?;
    Ok(ApiJson(EventsPage::from(&page)))
}
