//! `GET /v1/me/security`

use axum::extract::State;
use serde::Serialize;
use time::OffsetDateTime;

use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, Authenticated};
use crate::state::AppState;

/// Second factors as the security summary shows them.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MfaSecurity {
    /// TOTP enabled.
    pub totp: bool,
    /// Registered passkeys.
    pub webauthn: u32,
    /// Unused recovery codes.
    pub recovery_codes_left: u32,
}

/// One security event.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventBody {
    /// What happened (`login_succeeded`, `mfa_enabled`, `account_locked`, ...).
    pub kind: &'static str,
    /// RFC 3339.
    #[serde(with = "latchkey_core::time_fmt::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Client address, when known.
    pub ip: Option<String>,
}

/// The summary.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SecurityBody {
    /// Second factors.
    pub mfa: MfaSecurity,
    /// When the current password was set (RFC 3339).
    #[serde(with = "latchkey_core::time_fmt::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub password_changed_at: OffsetDateTime,
    /// Whole days since then.
    pub password_age_days: i64,
    /// Live sessions, this one included.
    pub sessions: usize,
    /// Failed sign-ins since the last successful one.
    pub failed_logins_since_last_success: i32,
    /// Last successful sign-in (RFC 3339), if any.
    #[serde(with = "latchkey_core::time_fmt::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_login_at: Option<OffsetDateTime>,
    /// The newest security events (at most 10), newest first.
    pub recent_events: Vec<EventBody>,
}

/// The signed-in user's security summary.
#[utoipa::path(get, path = "/v1/me/security", tag = "me", security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "Second factors, recovery codes left, password age, sessions, failed sign-ins, recent events", body = SecurityBody),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn security(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
) -> Result<ApiJson<SecurityBody>, ApiError> {
    let s = state.services.sessions.security_summary(&p).await?;
    let now = state.clock.now();
    Ok(ApiJson(SecurityBody {
        mfa: MfaSecurity {
            totp: s.mfa.totp,
            webauthn: s.mfa.webauthn,
            recovery_codes_left: s.mfa.recovery_codes_left,
        },
        password_changed_at: s.password_changed_at,
        password_age_days: (now - s.password_changed_at).whole_days().max(0),
        sessions: s.live_sessions,
        failed_logins_since_last_success: s.failed_logins_since_last_success,
        last_login_at: s.last_login_at,
        recent_events: s
            .recent_events
            .into_iter()
            .map(|e| EventBody {
                kind: e.kind.as_str(),
                created_at: e.created_at,
                ip: e.ip,
            })
            .collect(),
    }))
}
