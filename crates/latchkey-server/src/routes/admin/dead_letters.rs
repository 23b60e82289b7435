//! `/v1/admin/events/dead-letters`: deliveries that failed their last
//! attempt, and sending one again (`events:manage`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use latchkey_core::auth::Caller;
use latchkey_core::webhooks::DeadLetter;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::path_id;
use crate::client::ClientInfo;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiQuery, Authenticated};
use crate::state::AppState;

/// A dead letter.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetterBody {
    /// Its id.
    pub id: Uuid,
    /// The event it carried.
    pub event_id: Uuid,
    /// The webhook it was for.
    pub webhook_id: Uuid,
    /// The event's type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last failure (at most 1 KiB: the status and the start of the
    /// answer, or why the endpoint could not be reached).
    pub last_error: Option<String>,
    /// RFC 3339.
    #[serde(with = "latchkey_core::time_fmt::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub failed_at: OffsetDateTime,
}

impl From<&DeadLetter> for DeadLetterBody {
    fn from(d: &DeadLetter) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            webhook_id: d.webhook_id,
            kind: d.kind.clone(),
            attempts: d.attempts,
            last_error: d.last_error.clone(),
            failed_at: d.failed_at,
        }
    }
}

/// A page of dead letters.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLettersPage {
    /// Oldest first.
    pub items: Vec<DeadLetterBody>,
    /// The next page's cursor; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `?cursor=&limit=`
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeadLettersQuery {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Dead letters per page: 1 to 200 (default 50); anything else is `400`.
    pub limit: Option<u32>,
}

/// Lists the dead letters (`events:manage`).
#[utoipa::path(get, path = "/v1/admin/events/dead-letters", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(DeadLettersQuery),
    responses(
        (status = 200, description = "A page of dead letters, oldest first", body = DeadLettersPage),
        (status = 400, description = "`malformed_request`: a bad cursor or limit", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    ApiQuery(q): ApiQuery<DeadLettersQuery>,
) -> Result<ApiJson<DeadLettersPage>, ApiError> {
    let page = state
        .services
        .admin
        .dead_letters(Caller::User(&p), q.cursor.as_deref(), q.limit)
        .await?;
    Ok(ApiJson(DeadLettersPage {
        items: page.items.iter().map(DeadLetterBody::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Sends a dead letter again, as a new series of attempts (`events:manage`).
#[utoipa::path(post, path = "/v1/admin/events/dead-letters/{id}/retry", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Dead letter id")),
    responses(
        (status = 202, description = "Queued for delivery again"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, or `csrf_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no such dead letter (or it was retried already)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn retry(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .admin
        .retry_dead_letter(Caller::User(&p), path_id(&id)?, &client.context())
        .await?;
    Ok(StatusCode::ACCEPTED)
}
