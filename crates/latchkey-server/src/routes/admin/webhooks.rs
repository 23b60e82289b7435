//! `/v1/admin/webhooks`: listing, adding and deleting webhooks, and rotating
//! their signing secrets (`webhooks:write`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use latchkey_core::auth::{Caller, WebhookWithSecret};
use latchkey_core::webhooks::Webhook;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::path_id;
use crate::client::ClientInfo;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, Authenticated};
use crate::state::AppState;

/// A webhook as the admin API shows it (never its secret).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookBody {
    /// Its id.
    pub id: Uuid,
    /// Where events are POSTed.
    pub url: String,
    /// Event types, `*` (all) or `alert`.
    pub events: Vec<String>,
    /// The administrator's note.
    pub description: Option<String>,
    /// `true` for an endpoint of `[[webhooks.endpoints]]` (the configuration
    /// owns it: it cannot be deleted or rotated here).
    #[serde(rename = "static")]
    pub is_static: bool,
    /// RFC 3339.
    #[serde(with = "latchkey_core::time_fmt::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Until when the previous secret still signs, after a rotation.
    #[serde(with = "latchkey_core::time_fmt::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub previous_secret_until: Option<OffsetDateTime>,
}

impl From<&Webhook> for WebhookBody {
    fn from(w: &Webhook) -> Self {
        Self {
            id: w.id,
            url: w.url.clone(),
            events: w.events.names().to_vec(),
            description: w.description.clone(),
            is_static: w.static_name.is_some(),
            created_at: w.created_at,
            previous_secret_until: w.previous.as_ref().map(|(_, until)| *until),
        }
    }
}

/// A webhook with its secret: shown once, at creation or rotation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookWithSecretBody {
    /// Its id.
    pub id: Uuid,
    /// Where events are POSTed.
    pub url: String,
    /// Event types, `*` (all) or `alert`.
    pub events: Vec<String>,
    /// The signing secret, `whsec_` + base64: verify `webhook-signature`
    /// with it (Standard Webhooks). Not shown again.
    pub secret: String,
}

impl From<&WebhookWithSecret> for WebhookWithSecretBody {
    fn from(w: &WebhookWithSecret) -> Self {
        Self {
            id: w.webhook.id,
            url: w.webhook.url.clone(),
            events: w.webhook.events.names().to_vec(),
            secret: w.secret.to_string(),
        }
    }
}

/// Every webhook.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhooksList {
    /// Oldest first.
    pub items: Vec<WebhookBody>,
}

/// Lists the webhooks (`webhooks:write`).
#[utoipa::path(get, path = "/v1/admin/webhooks", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Every webhook", body = WebhooksList),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
) -> Result<ApiJson<WebhooksList>, ApiError> {
    let hooks = state.services.admin.webhooks(Caller::User(&p)).await?;
    Ok(ApiJson(WebhooksList {
        items: hooks.iter().map(WebhookBody::from).collect(),
    }))
}

/// A new webhook.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookBody {
    /// `https://...` (in production also: not resolving to a loopback,
    /// private or link-local address).
    pub url: String,
    /// Event types (docs/events.md), `"*"` for all, `"alert"` for alerts.
    pub events: Vec<String>,
    /// A note (at most 256 characters).
    pub description: Option<String>,
}

/// Adds a webhook (`webhooks:write`): it receives the events committed from
/// now on, signed with the secret in the answer (shown once).
#[utoipa::path(post, path = "/v1/admin/webhooks", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    request_body = NewWebhookBody,
    responses(
        (status = 201, description = "The new webhook with its secret", body = WebhookWithSecretBody),
        (status = 400, description = "`validation_failed`: a URL that is not https or points at a private address, unknown event types, a bad description; `malformed_request`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, or `csrf_failed`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    ApiJson(body): ApiJson<NewWebhookBody>,
) -> Result<impl IntoResponse, ApiError> {
    let created = state
        .services
        .admin
        .create_webhook(
            Caller::User(&p),
            &body.url,
            &body.events,
            body.description.as_deref(),
            &client.context(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(WebhookWithSecretBody::from(&created)),
    ))
}

/// Deletes a webhook with its pending deliveries and dead letters
/// (`webhooks:write`).
#[utoipa::path(delete, path = "/v1/admin/webhooks/{id}", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, or `csrf_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: an endpoint of the configuration", body = Problem, content_type = "application/problem+json"),
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
        .delete_webhook(Caller::User(&p), path_id(&id)?, &client.context())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives a webhook a new signing secret (`webhooks:write`), shown once; the
/// previous one signs alongside for `webhooks.secret_overlap_seconds` (both
/// signatures are sent), so the receiver can switch without a failure.
#[utoipa::path(post, path = "/v1/admin/webhooks/{id}/rotate-secret", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses(
        (status = 201, description = "The webhook with its new secret", body = WebhookWithSecretBody),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, or `csrf_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: an endpoint of the configuration", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let rotated = state
        .services
        .admin
        .rotate_webhook_secret(Caller::User(&p), path_id(&id)?, &client.context())
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(WebhookWithSecretBody::from(&rotated)),
    ))
}
