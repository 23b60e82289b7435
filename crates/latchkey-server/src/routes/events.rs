//! The `SecurityEvent` body of API.md, and its pages (`GET /v1/me/events`,
//! `GET /v1/admin/audit`).

use latchkey_core::audit::SecurityEvent;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// One security event (docs/events.md lists every type with its category
/// and severity).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecurityEventBody {
    /// UUIDv7.
    pub id: Uuid,
    /// What happened (`login_succeeded`, `roles_changed`, ...).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `authentication`, `session`, `account`, `mfa`, `admin`, `privacy` or `system`.
    pub category: &'static str,
    /// `info`, `notice`, `warning` or `critical`.
    pub severity: &'static str,
    /// RFC 3339.
    #[serde(with = "latchkey_core::time_fmt::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: OffsetDateTime,
    /// The account concerned; `null` once the account was deleted (redacted).
    pub user_id: Option<Uuid>,
    /// The administrator who acted; `null` when the user (or the operator) did.
    pub actor_id: Option<Uuid>,
    /// The session concerned, if any.
    pub session_id: Option<Uuid>,
    /// The client's address, when known.
    pub ip: Option<String>,
    /// The client's User-Agent (bounded), when known.
    pub user_agent: Option<String>,
    /// What changed (a small object per type; never a secret).
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<&SecurityEvent> for SecurityEventBody {
    fn from(e: &SecurityEvent) -> Self {
        let (category, severity) = e.kind.class();
        Self {
            id: e.id,
            kind: e.kind.as_str(),
            category: category.as_str(),
            severity: severity.as_str(),
            occurred_at: e.created_at,
            user_id: e.user_id,
            actor_id: e.actor_id,
            session_id: e.session_id,
            ip: e.ip.clone(),
            user_agent: e.user_agent.clone(),
            details: e
                .details
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or_else(|| serde_json::json!({})),
        }
    }
}

/// A page of security events, newest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventsPage {
    /// The events, newest first.
    pub items: Vec<SecurityEventBody>,
    /// The next (older) page's cursor; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl From<&latchkey_core::auth::Page<SecurityEvent>> for EventsPage {
    fn from(page: &latchkey_core::auth::Page<SecurityEvent>) -> Self {
        Self {
            items: page.items.iter().map(SecurityEventBody::from).collect(),
            next_cursor: page.next_cursor.clone(),
        }
    }
}
