//! Removal of expired data.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;

/// What one kind of expired data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// Sessions revoked or past their idle/absolute expiry (their refresh tokens go
    /// with them).
    Sessions,
    /// Refresh tokens past their expiry.
    RefreshTokens,
    /// Denylist entries whose access token has expired anyway.
    DeniedAccessTokens,
    /// Verification tokens used or past their expiry.
    VerificationTokens,
    /// Outbox messages sent or failed more than a week ago.
    OldMail,
    /// Sign-in MFA challenges used or past their expiry.
    MfaChallenges,
    /// WebAuthn ceremonies past their expiry.
    WebauthnCeremonies,
    /// Password-reset tokens used or past their expiry.
    PasswordResetTokens,
    /// Email-change tokens used or past their expiry.
    EmailChangeTokens,
    /// Lockout rows of identifiers with no failure and no lock in force for a
    /// day (the next failure starts a fresh count, and a fresh lock length).
    LoginThrottles,
    /// Idempotency-Key records past their retention
    /// ([`crate::idempotency::RETENTION`]).
    IdempotencyKeys,
    /// Webhook deliveries delivered more than a week ago (dead letters stay
    /// until sent again or their webhook is deleted).
    WebhookDeliveries,
}

impl Expired {
    /// Rows older than this (at `now`) are expired: `now` for tokens and sessions,
    /// a week ago for finished mail (kept that long for diagnosis).
    pub fn cutoff(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            Self::OldMail | Self::WebhookDeliveries => now - time::Duration::days(7),
            Self::LoginThrottles => now - time::Duration::days(1),
            Self::IdempotencyKeys => now - crate::idempotency::RETENTION,
            _ => now,
        }
    }
}

/// Removal of data nobody can use any more.
#[async_trait]
pub trait MaintenanceStore: Send + Sync {
    /// Deletes at most `batch` rows of `kind` that are expired at `now`; returns
    /// how many. Callers repeat until it returns less than `batch`.
    async fn delete_expired(
        &self,
        kind: Expired,
        now: OffsetDateTime,
        batch: u32,
    ) -> Result<u64, StoreError>;
}
