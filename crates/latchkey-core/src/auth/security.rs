//! `GET /v1/me/security`: what the user should know about their account's
//! protection, in one read.

use time::OffsetDateTime;

use crate::audit::SecurityEvent;
use crate::mfa::MfaSummary;

use super::{AuthError, Principal, Sessions};

/// Recent events shown in the summary.
pub const RECENT_EVENTS: u32 = 10;

/// The signed-in user's security summary.
#[derive(Debug, Clone)]
pub struct SecuritySummary {
    /// Second factors and recovery codes left.
    pub mfa: MfaSummary,
    /// When the current password was set.
    pub password_changed_at: OffsetDateTime,
    /// Live sessions (this one included).
    pub live_sessions: usize,
    /// Failed sign-ins since the last successful one.
    pub failed_logins_since_last_success: i32,
    /// Last successful sign-in.
    pub last_login_at: Option<OffsetDateTime>,
    /// The newest security events, newest first.
    pub recent_events: Vec<SecurityEvent>,
}

impl Sessions {
    /// The summary, read fresh from the store (never from the profile cache).
    pub async fn security_summary(
        &self,
        principal: &Principal,
    ) -> Result<SecuritySummary, AuthError> {
        let user = self
            .store
            .user_by_id(principal.user_id)
            .await?
            .ok_or(AuthError::Unauthorized)?;
        let live_sessions = self
            .store
            .live_sessions(user.id, self.common.now())
            .await?
            .len();
        let recent_events = self.store.user_events(user.id, RECENT_EVENTS).await?;
        Ok(SecuritySummary {
            mfa: user.mfa,
            password_changed_at: user.password_changed_at,
            live_sessions,
            failed_logins_since_last_success: user.failed_login_count,
            last_login_at: user.last_login_at,
            recent_events,
        })
    }
}
