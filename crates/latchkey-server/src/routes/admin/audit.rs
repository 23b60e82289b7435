//! `GET /v1/admin/audit`: every account's security events (`audit:read`).

use axum::extract::State;
use latchkey_core::auth::{AuditQuery, Caller};
use serde::Deserialize;

use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, Authenticated};
use crate::routes::events::EventsPage;
use crate::state::AppState;

/// `?user_id=&type=&category=&severity=&since=&until=&cursor=&limit=`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Events about this account id.
    pub user_id: Option<String>,
    /// Of this type (docs/events.md).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// Of this category.
    pub category: Option<String>,
    /// Of exactly this severity (`info`, `notice`, `warning`, `critical`).
    pub severity: Option<String>,
    /// Recorded at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Recorded before this time (RFC 3339).
    pub until: Option<String>,
    /// The `next_cursor` of the previous page (valid with the same filters only).
    pub cursor: Option<String>,
    /// Events per page: 1 to 200 (default 50); anything else is `400`.
    pub limit: Option<u32>,
}

/// The audit trail, newest first (`audit:read`).
#[utoipa::path(get, path = "/v1/admin/audit", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(AuditParams),
    responses(
        (status = 200, description = "A page of security events, newest first", body = EventsPage),
        (status = 400, description = "`malformed_request`: a bad filter, cursor or limit (the detail names it)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: the caller's current roles do not grant `audit:read`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    ApiQuery(q): ApiQuery<AuditParams>,
) -> Result<ApiJson<EventsPage>, ApiError> {
    let filters = AuditQuery {
        user_id: q.user_id.as_deref(),
        kind: q.kind.as_deref(),
        category: q.category.as_deref(),
        severity: q.severity.as_deref(),
        since: q.since.as_deref(),
        until: q.until.as_deref(),
    };
    let page = state
        .services
        .admin
        .audit(Caller::User(&p), &filters, q.cursor.as_deref(), q.limit)
        .await?;
    Ok(ApiJson(EventsPage::from(&page)))
}
