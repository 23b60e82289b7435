//! `VerificationStore` and `OutboxStore` on PostgreSQL.

use async_trait::async_trait;
use latchkey_core::account::{NewUser, User};
use latchkey_core::mail::{QueuedBody, QueuedMail};
use latchkey_core::ports::{
    Aftermath, NewEmailChange, NewVerification, OutboxStore, PendingEmailChange, StoreError,
    VerificationStore,
};
use sqlx::{Postgres, Row, Transaction};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::users::insert_user;
use crate::{map_error, PostgresStore};

async fn insert_token(
    tx: &mut Transaction<'_, Postgres>,
    t: &NewVerification,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO email_verification_tokens (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(&t.token_hash[..])
        .bind(t.user_id)
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(&mut **tx)
        .await
        .map_err(map_error)?;
    Ok(())
}

pub(crate) async fn insert_mail(
    tx: &mut Transaction<'_, Postgres>,
    m: &QueuedMail,
) -> Result<(), StoreError> {
    let (sealed, text, html) = m.body.columns();
    sqlx::query(
        "INSERT INTO mail_outbox (id, recipient, subject, body_text, body_html, body_sealed, created_at, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(m.id)
    .bind(&m.to)
    .bind(&m.subject)
    .bind(text)
    .bind(html)
    .bind(sealed)
    .bind(m.created_at)
    .bind(m.created_at)
    .execute(&mut **tx)
    .await
    .map_err(map_error)?;
    Ok(())
}

#[async_trait]
impl VerificationStore for PostgresStore {
    async fn create_user_with_verification(
        &self,
        user: &NewUser,
        verification: Option<(&NewVerification, &QueuedMail)>,
    ) -> Result<User, StoreError> {
        let mut tx = self.pool().begin().await.map_err(map_error)?;
        let created = insert_user(&mut *tx, user).await?;
        if let Some((token, mail)) = verification {
            insert_token(&mut tx, token).await?;
            insert_mail(&mut tx, mail).await?;
        }
        tx.commit().await.map_err(map_error)?;
        Ok(created)
    }

    async fn issue_verification(
        &self,
        token: &NewVerification,
        mail: &QueuedMail,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await.map_err(map_error)?;
        insert_token(&mut tx, token).await?;
        insert_mail(&mut tx, mail).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn consume_verification(
        &self,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<Uuid>, StoreError> {
        let mut tx = self.pool().begin().await.map_err(map_error)?;
        let user_id: Option<Uuid> = sqlx::query_scalar(
            "UPDATE email_verification_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $3 \
             RETURNING user_id",
        )
        .bind(now)
        .bind(&token_hash[..])
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        if let Some(id) = user_id {
            sqlx::query("UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1), updated_at = $2 WHERE id = $3")
                .bind(now)
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(map_error)?;
        }
        tx.commit().await.map_err(map_error)?;
        Ok(user_id)
    }

    async fn issue_password_reset(
        &self,
        token: &NewVerification,
        mail: &QueuedMail,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await.map_err(map_error)?;
        sqlx::query("DELETE FROM password_reset_tokens WHERE user_id = $1")
            .bind(token.user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        sqlx::query(
            "INSERT INTO password_reset_tokens (token_hash, user_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(&token.token_hash[..])
        .bind(token.user_id)
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        insert_mail(&mut tx, mail).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn issue_email_change(
        &self,
        change: &NewEmailChange,
        mails: &[QueuedMail],
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let t = &change.token;
        let mut tx = self.pool().begin().await.map_err(map_error)?;
        // The user row first, as every stamp change takes it, then the asking
        // session's: a recovery or revocation either committed before (and
        // is seen here) or waits until this token exists (and deletes it).
        let stamp: Option<i64> =
            sqlx::query_scalar("SELECT security_stamp FROM users WHERE id = $1 FOR UPDATE")
                .bind(t.user_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_error)?;
        if stamp != Some(change.security_stamp) {
            return Ok(false);
        }
        let asking: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM sessions WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL \
             AND idle_expires_at > $3 AND absolute_expires_at > $3 FOR UPDATE",
        )
        .bind(change.session_id)
        .bind(t.user_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        if asking.is_none() {
            return Ok(false);
        }
        sqlx::query("DELETE FROM email_change_tokens WHERE user_id = $1")
            .bind(t.user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        sqlx::query(
            "INSERT INTO email_change_tokens (token_hash, user_id, new_email, new_email_normalized, \
             created_at, expires_at, security_stamp, session_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&t.token_hash[..])
        .bind(t.user_id)
        .bind(&change.new_email)
        .bind(&change.new_email_normalized)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(change.security_stamp)
        .bind(change.session_id)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        for mail in mails {
            insert_mail(&mut tx, mail).await?;
        }
        tx.commit().await.map_err(map_error)?;
        Ok(true)
    }

    async fn pending_email_change(
        &self,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<PendingEmailChange>, StoreError> {
        let row: Option<(Uuid, String)> = sqlx::query_as(
            "SELECT t.user_id, t.new_email FROM email_change_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.expires_at > $2 \
             AND t.security_stamp = u.security_stamp",
        )
        .bind(&token_hash[..])
        .bind(now)
        .fetch_optional(self.pool())
        .await
        .map_err(map_error)?;
        Ok(row.map(|(user_id, new_email)| PendingEmailChange { user_id, new_email }))
    }

    async fn complete_email_change(
        &self,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
        mail: Option<&QueuedMail>,
    ) -> Result<Option<Uuid>, StoreError> {
        let mut tx = self.pool().begin().await.map_err(map_error)?;
        // The user row first, as password changes and sign-outs everywhere
        // lock it before the email-change tokens they delete (one lock
        // order); its stamp then cannot move until this commits.
        let stamp: Option<i64> = sqlx::query_scalar(
            "SELECT u.security_stamp FROM users u JOIN email_change_tokens t ON t.user_id = u.id \
             WHERE t.token_hash = $1 FOR UPDATE OF u",
        )
        .bind(&token_hash[..])
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        let Some(stamp) = stamp else {
            return Ok(None);
        };
        let row: Option<(Uuid, String, String)> = sqlx::query_as(
            "UPDATE email_change_tokens SET used_at = $1 WHERE token_hash = $2 \
             AND used_at IS NULL AND expires_at > $3 AND security_stamp = $4 \
             RETURNING user_id, new_email, new_email_normalized",
        )
        .bind(now)
        .bind(&token_hash[..])
        .bind(now)
        .bind(stamp)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        let Some((user_id, email, normalized)) = row else {
            return Ok(None);
        };
        // A taken address fails here on the unique constraint, rolling back the
        // whole transaction (the token stays unused).
        sqlx::query(
            "UPDATE users SET email = $1, email_normalized = $2, \
             email_verified_at = $3, updated_at = $4 WHERE id = $5",
        )
        .bind(&email)
        .bind(&normalized)
        .bind(now)
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        crate::users::delete_mailed_links(&mut tx, user_id).await?;
        if let Some(mail) = mail {
            insert_mail(&mut tx, mail).await?;
        }
        tx.commit().await.map_err(map_error)?;
        Ok(Some(user_id))
    }

    async fn password_reset_user(
        &self,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<Uuid>, StoreError> {
        sqlx::query_scalar(
            "SELECT user_id FROM password_reset_tokens WHERE token_hash = $1 AND used_at IS NULL \
             AND expires_at > $2",
        )
        .bind(&token_hash[..])
        .bind(now)
        .fetch_optional(self.pool())
        .await
        .map_err(map_error)
    }

    async fn complete_password_reset(
        &self,
        token_hash: &[u8; 32],
        hash: &str,
        now: OffsetDateTime,
        keep: u32,
        after: &Aftermath<'_>,
    ) -> Result<Option<Uuid>, StoreError> {
        let mut tx = self.pool().begin().await.map_err(map_error)?;
        let user_id: Option<Uuid> = sqlx::query_scalar(
            "UPDATE password_reset_tokens SET used_at = $1 WHERE token_hash = $2 \
             AND used_at IS NULL AND expires_at > $3 RETURNING user_id",
        )
        .bind(now)
        .bind(&token_hash[..])
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        if let Some(id) = user_id {
            crate::users::set_password_in(&mut tx, id, hash, now, keep).await?;
            crate::aftermath::apply(&mut tx, id, after, now).await?;
        }
        tx.commit().await.map_err(map_error)?;
        Ok(user_id)
    }
}

#[async_trait]
impl OutboxStore for PostgresStore {
    async fn enqueue_mail(&self, mail: &QueuedMail) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await.map_err(map_error)?;
        insert_mail(&mut tx, mail).await?;
        tx.commit().await.map_err(map_error)
    }

    async fn claim_mail(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<QueuedMail>, StoreError> {
        let mut tx = self.pool().begin().await.map_err(map_error)?;
        let rows = sqlx::query(
            "UPDATE mail_outbox SET next_attempt_at = $1, attempts = attempts + 1 WHERE id IN (SELECT id FROM mail_outbox \
             WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $2 ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
             RETURNING id, recipient, subject, body_text, body_html, body_sealed, created_at, attempts",
        )
        .bind(now + lease)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(map_error)?;
        tx.commit().await.map_err(map_error)?;
        rows.iter()
            .map(|r| {
                Ok(QueuedMail {
                    id: r.try_get("id").map_err(map_error)?,
                    to: r.try_get("recipient").map_err(map_error)?,
                    subject: r.try_get("subject").map_err(map_error)?,
                    body: QueuedBody::from_columns(
                        r.try_get("body_sealed").map_err(map_error)?,
                        r.try_get("body_text").map_err(map_error)?,
                        r.try_get("body_html").map_err(map_error)?,
                    ),
                    created_at: r.try_get("created_at").map_err(map_error)?,
                    attempts: r.try_get("attempts").map_err(map_error)?,
                })
            })
            .collect()
    }

    async fn mark_mail_sent(&self, id: Uuid, now: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE mail_outbox SET sent_at = $1, last_error = NULL, body_text = '', body_html = NULL, body_sealed = NULL WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn mark_mail_retry(
        &self,
        id: Uuid,
        next_attempt_at: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE mail_outbox SET next_attempt_at = $1, last_error = $2 WHERE id = $3 AND sent_at IS NULL")
            .bind(next_attempt_at)
            .bind(error)
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn mark_mail_failed(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE mail_outbox SET failed_at = $1, last_error = $2, body_text = '', body_html = NULL, body_sealed = NULL \
             WHERE id = $3 AND sent_at IS NULL")
            .bind(now)
            .bind(error)
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn pending_mail(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM mail_outbox WHERE sent_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(self.pool())
        .await
        .map_err(map_error)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
