//! `MaintenanceStore`: batched deletion of expired data.

use async_trait::async_trait;
use latchkey_core::ports::{Expired, MaintenanceStore, StoreError};
use time::OffsetDateTime;

use crate::backend::{Backend, Exec};
use crate::query::sql;
use crate::SqlStore;

#[async_trait]
impl<B: Backend> MaintenanceStore for SqlStore<B> {
    async fn delete_expired(
        &self,
        kind: Expired,
        now: OffsetDateTime,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let cutoff = kind.cutoff(now);
        let statement = match kind {
            Expired::Sessions => "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE revoked_at IS NOT NULL OR idle_expires_at <= $1 OR absolute_expires_at <= $1 LIMIT $2)",
            Expired::RefreshTokens => "DELETE FROM refresh_tokens WHERE id IN (SELECT id FROM refresh_tokens WHERE expires_at <= $1 LIMIT $2)",
            Expired::DeniedAccessTokens => "DELETE FROM denied_access_tokens WHERE jti IN (SELECT jti FROM denied_access_tokens WHERE expires_at <= $1 LIMIT $2)",
            Expired::VerificationTokens => "DELETE FROM email_verification_tokens WHERE token_hash IN (SELECT token_hash FROM email_verification_tokens WHERE used_at IS NOT NULL OR expires_at <= $1 LIMIT $2)",
            Expired::MfaChallenges => "DELETE FROM mfa_challenges WHERE id IN (SELECT id FROM mfa_challenges WHERE used_at IS NOT NULL OR expires_at <= $1 LIMIT $2)",
            Expired::WebauthnCeremonies => "DELETE FROM webauthn_ceremonies WHERE id IN (SELECT id FROM webauthn_ceremonies WHERE expires_at <= $1 LIMIT $2)",
            Expired::LoginThrottles => "DELETE FROM login_throttles WHERE key IN (SELECT key FROM login_throttles WHERE updated_at <= $1 AND (locked_until IS NULL OR locked_until <= $1) LIMIT $2)",
            Expired::EmailChangeTokens => "DELETE FROM email_change_tokens WHERE token_hash IN (SELECT token_hash FROM email_change_tokens WHERE used_at IS NOT NULL OR expires_at <= $1 LIMIT $2)",
            Expired::PasswordResetTokens => "DELETE FROM password_reset_tokens WHERE token_hash IN (SELECT token_hash FROM password_reset_tokens WHERE used_at IS NOT NULL OR expires_at <= $1 LIMIT $2)",
            Expired::IdempotencyKeys => "DELETE FROM idempotency_keys WHERE record_key IN (SELECT record_key FROM idempotency_keys WHERE created_at <= $1 LIMIT $2)",
            Expired::WebhookDeliveries => "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries WHERE delivered_at IS NOT NULL AND delivered_at <= $1 LIMIT $2)",
            Expired::OldMail => "DELETE FROM mail_outbox WHERE id IN (SELECT id FROM mail_outbox WHERE (sent_at IS NOT NULL AND sent_at <= $1) OR (failed_at IS NOT NULL AND failed_at <= $1) LIMIT $2)",
        };
        self.pool()
            .execute(sql(statement).bind(cutoff).bind(batch))
            .await
    }
}
