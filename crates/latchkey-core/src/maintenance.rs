//! Cleanup of expired data, in batches, never overlapping with itself.

use std::sync::atomic::{AtomicBool, Ordering};

use time::OffsetDateTime;

use crate::ports::{Expired, Store, StoreError};

/// Rows deleted per statement: small enough not to hold locks for long.
pub const BATCH: u32 = 500;

/// How many rows of each kind a cleanup removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// Dead sessions (with their refresh tokens).
    pub sessions: u64,
    /// Expired refresh tokens of live sessions.
    pub refresh_tokens: u64,
    /// Expired denylist entries.
    pub denied_access_tokens: u64,
    /// Used or expired verification, password-reset and email-change tokens.
    pub verification_tokens: u64,
    /// Old sent or failed mail.
    pub old_mail: u64,
    /// Used or expired sign-in MFA challenges and WebAuthn ceremonies.
    pub mfa_challenges: u64,
    /// Lockout rows idle for a day with no lock in force.
    pub login_throttles: u64,
    /// Idempotency-Key records older than their retention.
    pub idempotency_keys: u64,
    /// Webhook deliveries delivered more than a week ago.
    pub webhook_deliveries: u64,
}

/// Runs cleanups one at a time: a second call while one runs returns `None`
/// instead of overlapping.
#[derive(Debug, Default)]
pub struct Cleaner {
    running: AtomicBool,
}

impl Cleaner {
    /// Deletes everything expired at `now`, batch by batch; `None` if a cleanup is
    /// already running in this process.
    pub async fn run(
        &self,
        store: &dyn Store,
        now: OffsetDateTime,
    ) -> Option<Result<CleanupReport, StoreError>> {
        if self.running.swap(true, Ordering::AcqRel) {
            return None;
        }
        // Released on every exit, including a cancelled run (the future
        // dropped mid-way), so one interrupted cleanup cannot stop all later ones.
        let _running = Running(&self.running);
        Some(clean(store, now).await)
    }
}

/// Clears the running flag when dropped.
struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

async fn drain(store: &dyn Store, kind: Expired, now: OffsetDateTime) -> Result<u64, StoreError> {
    let mut total = 0;
    loop {
        let n = store.delete_expired(kind, now, BATCH).await?;
        total += n;
        if n < u64::from(BATCH) {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

async fn clean(store: &dyn Store, now: OffsetDateTime) -> Result<CleanupReport, StoreError> {
    Ok(CleanupReport {
        sessions: drain(store, Expired::Sessions, now).await?,
        refresh_tokens: drain(store, Expired::RefreshTokens, now).await?,
        denied_access_tokens: drain(store, Expired::DeniedAccessTokens, now).await?,
        verification_tokens: drain(store, Expired::VerificationTokens, now).await?
            + drain(store, Expired::PasswordResetTokens, now).await?
            + drain(store, Expired::EmailChangeTokens, now).await?,
        old_mail: drain(store, Expired::OldMail, now).await?,
        mfa_challenges: drain(store, Expired::MfaChallenges, now).await?
            + drain(store, Expired::WebauthnCeremonies, now).await?,
        login_throttles: drain(store, Expired::LoginThrottles, now).await?,
        idempotency_keys: drain(store, Expired::IdempotencyKeys, now).await?,
        webhook_deliveries: drain(store, Expired::WebhookDeliveries, now).await?,
    })
}
