//! `MfaStore` on SQLite.

use async_trait::async_trait;
use latchkey_core::mfa::challenge::MfaChallenge;
use latchkey_core::mfa::{MfaSummary, TotpRecord};
use latchkey_core::ports::{Aftermath, MfaStore, StoreError};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::time_codec::{from_micros, from_micros_opt, to_micros};
use crate::{map_error, SqliteStore};

const TOTP_COLUMNS: &str = "id, user_id, secret, key_id, created_at, confirmed_at, last_step";

fn totp_from_row(row: &SqliteRow) -> Result<TotpRecord, StoreError> {
    Ok(TotpRecord {
        id: row.try_get("id").map_err(map_error)?,
        user_id: row.try_get("user_id").map_err(map_error)?,
        secret_sealed: row.try_get("secret").map_err(map_error)?,
        key_id: row.try_get("key_id").map_err(map_error)?,
        created_at: from_micros(row.try_get("created_at").map_err(map_error)?)?,
        confirmed_at: from_micros_opt(row.try_get("confirmed_at").map_err(map_error)?)?,
        last_step: row.try_get("last_step").map_err(map_error)?,
    })
}

/// A user's factor counts as columns of a query over `users` (one source for
/// `User::mfa` and `mfa_summary`).
pub(crate) const MFA_COLUMNS: &str = "(SELECT COUNT(*) FROM mfa_totp t WHERE t.user_id = users.id AND t.confirmed_at IS NOT NULL) AS mfa_totp, \
     (SELECT COUNT(*) FROM mfa_recovery_codes r WHERE r.user_id = users.id AND r.used_at IS NULL) AS mfa_codes, \
     (SELECT COUNT(*) FROM webauthn_credentials w WHERE w.user_id = users.id) AS mfa_webauthn";

/// Reads the columns of [`MFA_COLUMNS`].
pub(crate) fn summary_from_row(row: &SqliteRow) -> Result<MfaSummary, StoreError> {
    let totp: i64 = row.try_get("mfa_totp").map_err(map_error)?;
    let codes: i64 = row.try_get("mfa_codes").map_err(map_error)?;
    let passkeys: i64 = row.try_get("mfa_webauthn").map_err(map_error)?;
    Ok(MfaSummary {
        totp: totp > 0,
        webauthn: u32::try_from(passkeys).unwrap_or(0),
        recovery_codes_left: u32::try_from(codes).unwrap_or(0),
    })
}

fn hash32(bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Internal("stored hash is not 32 bytes".into()))
}

fn challenge_from_row(row: &SqliteRow) -> Result<MfaChallenge, StoreError> {
    let token_hash: Vec<u8> = row.try_get("token_hash").map_err(map_error)?;
    let lockout_key: Vec<u8> = row.try_get("lockout_key").map_err(map_error)?;
    Ok(MfaChallenge {
        id: row.try_get("id").map_err(map_error)?,
        user_id: row.try_get("user_id").map_err(map_error)?,
        token_hash: hash32(&token_hash)?,
        created_at: from_micros(row.try_get("created_at").map_err(map_error)?)?,
        expires_at: from_micros(row.try_get("expires_at").map_err(map_error)?)?,
        attempts: row.try_get("attempts").map_err(map_error)?,
        remember_me: row.try_get("remember_me").map_err(map_error)?,
        mode: latchkey_core::auth::Delivery::parse(
            &row.try_get::<String, _>("mode").map_err(map_error)?,
        ),
        lockout_key: hash32(&lockout_key)?,
        security_stamp: row.try_get("security_stamp").map_err(map_error)?,
    })
}

pub(crate) async fn insert_codes(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    user_id: Uuid,
    hashes: &[[u8; 32]],
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = ?")
        .bind(user_id)
        .execute(&mut **tx)
        .await
        .map_err(map_error)?;
    for hash in hashes {
        sqlx::query(
            "INSERT INTO mfa_recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, ?)",
        )
        .bind(user_id)
        .bind(&hash[..])
        .bind(to_micros(now))
        .execute(&mut **tx)
        .await
        .map_err(map_error)?;
    }
    Ok(())
}

/// Makes concurrent factor changes of one user take turns: a no-op on
/// SQLite, whose write transactions (`BEGIN IMMEDIATE`) already do.
#[allow(clippy::unused_async)]
pub(crate) async fn lock_user_factors(
    _tx: &mut Transaction<'_, Sqlite>,
    _user_id: Uuid,
) -> Result<(), StoreError> {
    Ok(())
}

/// Removes the user's recovery codes when neither a confirmed TOTP factor
/// nor a passkey is left.
pub(crate) async fn drop_codes_without_factor(
    tx: &mut Transaction<'_, Sqlite>,
    user_id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM mfa_recovery_codes WHERE user_id = ? \
         AND NOT EXISTS (SELECT 1 FROM webauthn_credentials WHERE user_id = ?) \
         AND NOT EXISTS (SELECT 1 FROM mfa_totp WHERE user_id = ? AND confirmed_at IS NOT NULL)",
    )
    .bind(user_id)
    .bind(user_id)
    .bind(user_id)
    .execute(&mut **tx)
    .await
    .map_err(map_error)?;
    Ok(())
}

#[async_trait]
impl MfaStore for SqliteStore {
    async fn totp(&self, user_id: Uuid) -> Result<Option<TotpRecord>, StoreError> {
        let sql = format!("SELECT {TOTP_COLUMNS} FROM mfa_totp WHERE user_id = ?");
        let row = sqlx::query(&sql)
            .bind(user_id)
            .fetch_optional(self.pool())
            .await
            .map_err(map_error)?;
        row.as_ref().map(totp_from_row).transpose()
    }

    async fn put_pending_totp(&self, record: &TotpRecord) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO mfa_totp (id, user_id, secret, key_id, created_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (user_id) DO UPDATE SET id = excluded.id, secret = excluded.secret, \
             key_id = excluded.key_id, created_at = excluded.created_at, last_step = NULL \
             WHERE mfa_totp.confirmed_at IS NULL",
        )
        .bind(record.id)
        .bind(record.user_id)
        .bind(&record.secret_sealed)
        .bind(&record.key_id)
        .bind(to_micros(record.created_at))
        .execute(self.pool())
        .await
        .map_err(map_error)?;
        Ok(done.rows_affected() == 1)
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
        let mut tx = self.write_transaction().await?;
        let done = sqlx::query(
            "UPDATE mfa_totp SET confirmed_at = ?, last_step = ? \
             WHERE id = ? AND user_id = ? AND confirmed_at IS NULL",
        )
        .bind(to_micros(now))
        .bind(step)
        .bind(id)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        insert_codes(&mut tx, user_id, recovery_hashes, now).await?;
        crate::aftermath::apply(&mut tx, user_id, after, now).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(true)
    }

    async fn use_totp_step(&self, id: Uuid, step: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE mfa_totp SET last_step = ? WHERE id = ? AND confirmed_at IS NOT NULL \
             AND (last_step IS NULL OR last_step < ?)",
        )
        .bind(step)
        .bind(id)
        .bind(step)
        .execute(self.pool())
        .await
        .map_err(map_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_totp(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
        after: &Aftermath<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_transaction().await?;
        lock_user_factors(&mut tx, user_id).await?;
        let removed: Option<Option<i64>> =
            sqlx::query_scalar("DELETE FROM mfa_totp WHERE user_id = ? RETURNING confirmed_at")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_error)?;
        let Some(confirmed_at) = removed else {
            return Ok(false);
        };
        if confirmed_at.is_some() {
            crate::aftermath::apply(&mut tx, user_id, after, now).await?;
        }
        drop_codes_without_factor(&mut tx, user_id).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(true)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        hashes: &[[u8; 32]],
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_transaction().await?;
        insert_codes(&mut tx, user_id, hashes, now).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn use_recovery_code(
        &self,
        user_id: Uuid,
        hash: &[u8; 32],
        now: OffsetDateTime,
        after: &Aftermath<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_transaction().await?;
        let done = sqlx::query(
            "UPDATE mfa_recovery_codes SET used_at = ? \
             WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
        )
        .bind(to_micros(now))
        .bind(user_id)
        .bind(&hash[..])
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        crate::aftermath::apply(&mut tx, user_id, after, now).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(true)
    }

    async fn mfa_summary(&self, user_id: Uuid) -> Result<MfaSummary, StoreError> {
        let sql = format!("SELECT {MFA_COLUMNS} FROM users WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(user_id)
            .fetch_optional(self.pool())
            .await
            .map_err(map_error)?;
        row.as_ref()
            .map_or(Ok(MfaSummary::default()), summary_from_row)
    }

    async fn totp_key_ids(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT DISTINCT key_id FROM mfa_totp ORDER BY key_id")
            .fetch_all(self.pool())
            .await
            .map_err(map_error)?;
        rows.iter()
            .map(|r| r.try_get("key_id").map_err(map_error))
            .collect()
    }

    async fn totp_not_sealed_with(
        &self,
        key_id: &str,
        limit: u32,
    ) -> Result<Vec<TotpRecord>, StoreError> {
        let sql =
            format!("SELECT {TOTP_COLUMNS} FROM mfa_totp WHERE key_id <> ? ORDER BY id LIMIT ?");
        let rows = sqlx::query(&sql)
            .bind(key_id)
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await
            .map_err(map_error)?;
        rows.iter().map(totp_from_row).collect()
    }

    async fn reseal_totp(
        &self,
        id: Uuid,
        old: &[u8],
        sealed: &[u8],
        key_id: &str,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE mfa_totp SET secret = ?, key_id = ? WHERE id = ? AND secret = ?")
                .bind(sealed)
                .bind(key_id)
                .bind(id)
                .bind(old)
                .execute(self.pool())
                .await
                .map_err(map_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn create_mfa_challenge(&self, c: &MfaChallenge) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO mfa_challenges (id, user_id, token_hash, created_at, expires_at, \
             attempts, remember_me, mode, lockout_key, security_stamp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(c.id)
        .bind(c.user_id)
        .bind(&c.token_hash[..])
        .bind(to_micros(c.created_at))
        .bind(to_micros(c.expires_at))
        .bind(c.attempts)
        .bind(c.remember_me)
        .bind(c.mode.as_str())
        .bind(&c.lockout_key[..])
        .bind(c.security_stamp)
        .execute(self.pool())
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn mfa_challenge(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<MfaChallenge>, StoreError> {
        let row = sqlx::query(
            "SELECT id, user_id, token_hash, created_at, expires_at, attempts, remember_me, mode, \
             lockout_key, security_stamp FROM mfa_challenges WHERE token_hash = ? AND used_at IS NULL",
        )
        .bind(&token_hash[..])
        .fetch_optional(self.pool())
        .await
        .map_err(map_error)?;
        row.as_ref().map(challenge_from_row).transpose()
    }

    async fn take_mfa_attempt(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        max_attempts: i32,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE mfa_challenges SET attempts = attempts + 1 WHERE id = ?1 AND used_at IS NULL \
             AND expires_at > ?2 AND attempts < ?3",
        )
        .bind(id)
        .bind(to_micros(now))
        .bind(max_attempts)
        .execute(self.pool())
        .await
        .map_err(map_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn consume_mfa_challenge(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        max_attempts: i32,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE mfa_challenges SET used_at = ?1 WHERE id = ?2 AND used_at IS NULL \
             AND expires_at > ?1 AND attempts < ?3",
        )
        .bind(to_micros(now))
        .bind(id)
        .bind(max_attempts)
        .execute(self.pool())
        .await
        .map_err(map_error)?;
        Ok(done.rows_affected() == 1)
    }
}
