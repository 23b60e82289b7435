//! `MfaStore`.

use async_trait::async_trait;
use latchkey_core::mfa::challenge::MfaChallenge;
use latchkey_core::mfa::{MfaSummary, TotpRecord};
use latchkey_core::ports::{Aftermath, MfaStore, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::backend::{Backend, Exec, Lock, Transaction};
use crate::query::sql;
use crate::row::{hash32, Row, RowExt};
use crate::SqlStore;

const TOTP_COLUMNS: &str = "id, user_id, secret, key_id, created_at, confirmed_at, last_step";

fn totp_from_row<R: Row>(row: &R) -> Result<TotpRecord, StoreError> {
    Ok(TotpRecord {
        id: row.get("id")?,
        user_id: row.get("user_id")?,
        secret_sealed: row.get("secret")?,
        key_id: row.get("key_id")?,
        created_at: row.get("created_at")?,
        confirmed_at: row.get("confirmed_at")?,
        last_step: row.get("last_step")?,
    })
}

/// A user's factor counts as columns of a query over `users` (one source for
/// `User::mfa` and `mfa_summary`).
pub(crate) const MFA_COLUMNS: &str = "(SELECT COUNT(*) FROM mfa_totp t WHERE t.user_id = users.id AND t.confirmed_at IS NOT NULL) AS mfa_totp, \
     (SELECT COUNT(*) FROM mfa_recovery_codes r WHERE r.user_id = users.id AND r.used_at IS NULL) AS mfa_codes, \
     (SELECT COUNT(*) FROM webauthn_credentials w WHERE w.user_id = users.id) AS mfa_webauthn";

/// Reads the columns of [`MFA_COLUMNS`].
pub(crate) fn summary_from_row<R: Row + ?Sized>(row: &R) -> Result<MfaSummary, StoreError> {
    let totp: i64 = row.get("mfa_totp")?;
    let codes: i64 = row.get("mfa_codes")?;
    let passkeys: i64 = row.get("mfa_webauthn")?;
    Ok(MfaSummary {
        totp: totp > 0,
        webauthn: u32::try_from(passkeys).unwrap_or(0),
        recovery_codes_left: u32::try_from(codes).unwrap_or(0),
    })
}

const CHALLENGE_COLUMNS: &str =
    "id, user_id, token_hash, created_at, expires_at, attempts, remember_me, \
     mode, lockout_key, security_stamp";

fn challenge_from_row<R: Row>(row: &R) -> Result<MfaChallenge, StoreError> {
    Ok(MfaChallenge {
        id: row.get("id")?,
        user_id: row.get("user_id")?,
        token_hash: hash32(&row.get::<Vec<u8>>("token_hash")?)?,
        created_at: row.get("created_at")?,
        expires_at: row.get("expires_at")?,
        attempts: row.get("attempts")?,
        remember_me: row.get("remember_me")?,
        mode: latchkey_core::auth::Delivery::parse(&row.get::<String>("mode")?),
        lockout_key: hash32(&row.get::<Vec<u8>>("lockout_key")?)?,
        security_stamp: row.get("security_stamp")?,
    })
}

/// Replaces the user's recovery codes with `hashes`, in `tx`.
pub(crate) async fn insert_codes<E: Exec>(
    tx: &mut E,
    user_id: Uuid,
    hashes: &[[u8; 32]],
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    tx.execute(sql("DELETE FROM mfa_recovery_codes WHERE user_id = $1").bind(user_id))
        .await?;
    for hash in hashes {
        tx.execute(
            sql("INSERT INTO mfa_recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)")
                .bind(user_id)
                .bind(hash)
                .bind(now),
        )
        .await?;
    }
    Ok(())
}

/// Makes concurrent factor changes of one user take turns (a lock on the
/// user row): the second one then sees what the first did.
pub(crate) async fn lock_user_factors<B: Backend>(
    tx: &mut crate::events::Tx<B>,
    user_id: Uuid,
) -> Result<(), StoreError> {
    let q = format!(
        "SELECT 1 FROM users WHERE id = $1{}",
        B::lock(Lock::NoKeyUpdate)
    );
    tx.fetch_optional(sql(&q).bind(user_id)).await?;
    Ok(())
}

/// Removes the user's recovery codes when neither a confirmed TOTP factor
/// nor a passkey is left.
pub(crate) async fn drop_codes_without_factor<E: Exec>(
    tx: &mut E,
    user_id: Uuid,
) -> Result<(), StoreError> {
    tx.execute(
        sql("DELETE FROM mfa_recovery_codes WHERE user_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM webauthn_credentials WHERE user_id = $1) \
             AND NOT EXISTS (SELECT 1 FROM mfa_totp WHERE user_id = $1 AND confirmed_at IS NOT NULL)")
        .bind(user_id),
    )
    .await?;
    Ok(())
}

#[async_trait]
impl<B: Backend> MfaStore for SqlStore<B> {
    async fn totp(&self, user_id: Uuid) -> Result<Option<TotpRecord>, StoreError> {
        let q = format!("SELECT {TOTP_COLUMNS} FROM mfa_totp WHERE user_id = $1");
        let row = self.pool().fetch_optional(sql(&q).bind(user_id)).await?;
        row.as_ref().map(totp_from_row).transpose()
    }

    async fn put_pending_totp(&self, record: &TotpRecord) -> Result<bool, StoreError> {
        let changed = self
            .pool()
            .execute(
                sql("INSERT INTO mfa_totp (id, user_id, secret, key_id, created_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (user_id) DO UPDATE SET id = EXCLUDED.id, secret = EXCLUDED.secret, \
                     key_id = EXCLUDED.key_id, created_at = EXCLUDED.created_at, last_step = NULL \
                     WHERE mfa_totp.confirmed_at IS NULL")
                .bind(record.id)
                .bind(record.user_id)
                .bind(&record.secret_sealed)
                .bind(&record.key_id)
                .bind(record.created_at),
            )
            .await?;
        Ok(changed == 1)
    }

    async fn confirm_totp(
        &self,
        user_id: Uuid,
        id: Uuid,
        step: i64,
        recovery_hashes: &[[u8; 32]],
        now: OffsetDateTime,
        after: &Aftermath<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let changed = tx
            .execute(
                sql("UPDATE mfa_totp SET confirmed_at = $1, last_step = $2 \
                     WHERE id = $3 AND user_id = $4 AND confirmed_at IS NULL")
                .bind(now)
                .bind(step)
                .bind(id)
                .bind(user_id),
            )
            .await?;
        if changed != 1 {
            return Ok(false);
        }
        insert_codes(&mut tx, user_id, recovery_hashes, now).await?;
        crate::aftermath::apply::<B>(&mut tx, user_id, after, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn use_totp_step(&self, id: Uuid, step: i64) -> Result<bool, StoreError> {
        let changed = self
            .pool()
            .execute(
                sql("UPDATE mfa_totp SET last_step = $1 WHERE id = $2 AND confirmed_at IS NOT NULL \
                     AND (last_step IS NULL OR last_step < $1)")
                .bind(step)
                .bind(id),
            )
            .await?;
        Ok(changed == 1)
    }

    async fn delete_totp(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
        after: &Aftermath<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        lock_user_factors::<B>(&mut tx, user_id).await?;
        let removed = tx
            .fetch_optional(
                sql("DELETE FROM mfa_totp WHERE user_id = $1 RETURNING confirmed_at").bind(user_id),
            )
            .await?;
        let Some(removed) = removed else {
            return Ok(false);
        };
        if removed
            .get::<Option<OffsetDateTime>>("confirmed_at")?
            .is_some()
        {
            crate::aftermath::apply::<B>(&mut tx, user_id, after, now).await?;
        }
        drop_codes_without_factor(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        hashes: &[[u8; 32]],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        insert_codes(&mut tx, user_id, hashes, now).await?;
        tx.commit().await
    }

    async fn use_recovery_code(
        &self,
        user_id: Uuid,
        hash: &[u8; 32],
        now: OffsetDateTime,
        after: &Aftermath<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let changed = tx
            .execute(
                sql("UPDATE mfa_recovery_codes SET used_at = $1 \
                     WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL")
                .bind(now)
                .bind(user_id)
                .bind(hash),
            )
            .await?;
        if changed != 1 {
            return Ok(false);
        }
        crate::aftermath::apply::<B>(&mut tx, user_id, after, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn mfa_summary(&self, user_id: Uuid) -> Result<MfaSummary, StoreError> {
        let q = format!("SELECT {MFA_COLUMNS} FROM users WHERE id = $1");
        let row = self.pool().fetch_optional(sql(&q).bind(user_id)).await?;
        row.as_ref()
            .map_or(Ok(MfaSummary::default()), summary_from_row)
    }

    async fn totp_key_ids(&self) -> Result<Vec<String>, StoreError> {
        let rows = self
            .pool()
            .fetch_all(sql("SELECT DISTINCT key_id FROM mfa_totp ORDER BY key_id"))
            .await?;
        rows.iter().map(|r| r.get("key_id")).collect()
    }

    async fn totp_not_sealed_with(
        &self,
        key_id: &str,
        limit: u32,
    ) -> Result<Vec<TotpRecord>, StoreError> {
        let q =
            format!("SELECT {TOTP_COLUMNS} FROM mfa_totp WHERE key_id <> $1 ORDER BY id LIMIT $2");
        let rows = self
            .pool()
            .fetch_all(sql(&q).bind(key_id).bind(limit))
            .await?;
        rows.iter().map(totp_from_row).collect()
    }

    async fn reseal_totp(
        &self,
        id: Uuid,
        old: &[u8],
        sealed: &[u8],
        key_id: &str,
    ) -> Result<bool, StoreError> {
        let changed = self
            .pool()
            .execute(
                sql("UPDATE mfa_totp SET secret = $1, key_id = $2 WHERE id = $3 AND secret = $4")
                    .bind(sealed)
                    .bind(key_id)
                    .bind(id)
                    .bind(old),
            )
            .await?;
        Ok(changed == 1)
    }

    async fn create_mfa_challenge(&self, c: &MfaChallenge) -> Result<(), StoreError> {
        let q = format!(
            "INSERT INTO mfa_challenges ({CHALLENGE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        );
        self.pool()
            .execute(
                sql(&q)
                    .bind(c.id)
                    .bind(c.user_id)
                    .bind(&c.token_hash)
                    .bind(c.created_at)
                    .bind(c.expires_at)
                    .bind(c.attempts)
                    .bind(c.remember_me)
                    .bind(c.mode.as_str())
                    .bind(&c.lockout_key)
                    .bind(c.security_stamp),
            )
            .await?;
        Ok(())
    }

    async fn mfa_challenge(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<MfaChallenge>, StoreError> {
        let q = format!(
            "SELECT {CHALLENGE_COLUMNS} FROM mfa_challenges WHERE token_hash = $1 AND used_at IS NULL"
        );
        let row = self.pool().fetch_optional(sql(&q).bind(token_hash)).await?;
        row.as_ref().map(challenge_from_row).transpose()
    }

    async fn take_mfa_attempt(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        max_attempts: i32,
    ) -> Result<bool, StoreError> {
        let changed = self
            .pool()
            .execute(
                sql("UPDATE mfa_challenges SET attempts = attempts + 1 WHERE id = $1 AND used_at IS NULL \
                     AND expires_at > $2 AND attempts < $3")
                .bind(id)
                .bind(now)
                .bind(max_attempts),
            )
            .await?;
        Ok(changed == 1)
    }

    async fn consume_mfa_challenge(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        max_attempts: i32,
    ) -> Result<bool, StoreError> {
        let changed = self
            .pool()
            .execute(
                sql(
                    "UPDATE mfa_challenges SET used_at = $1 WHERE id = $2 AND used_at IS NULL \
                     AND expires_at > $1 AND attempts < $3",
                )
                .bind(now)
                .bind(id)
                .bind(max_attempts),
            )
            .await?;
        Ok(changed == 1)
    }
}
