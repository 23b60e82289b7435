//! `VerificationStore` and `OutboxStore`.

use async_trait::async_trait;
use latchkey_core::account::{NewUser, User};
use latchkey_core::mail::{QueuedBody, QueuedMail};
use latchkey_core::ports::{
    Aftermath, NewEmailChange, NewVerification, OutboxStore, PendingEmailChange, StoreError,
    VerificationStore,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::backend::{Backend, Exec, Lock, Transaction};
use crate::query::sql;
use crate::row::RowExt;
use crate::users::insert_user;
use crate::SqlStore;

/// A table of single-use mailed link tokens (the name is spliced into SQL:
/// only these constants exist).
#[derive(Debug, Clone, Copy)]
enum LinkTable {
    /// `email_verification_tokens`.
    Verification,
    /// `password_reset_tokens`.
    PasswordReset,
}

impl LinkTable {
    fn name(self) -> &'static str {
        match self {
            Self::Verification => "email_verification_tokens",
            Self::PasswordReset => "password_reset_tokens",
        }
    }
}

/// Stores a mailed link token in `table`, in `tx`.
async fn insert_link_token<E: Exec>(
    tx: &mut E,
    table: LinkTable,
    t: &NewVerification,
) -> Result<(), StoreError> {
    let q = format!(
        "INSERT INTO {} (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        table.name()
    );
    tx.execute(
        sql(&q)
            .bind(&t.token_hash)
            .bind(t.user_id)
            .bind(t.created_at)
            .bind(t.expires_at),
    )
    .await?;
    Ok(())
}

/// Stores an email-verification token, in `tx`.
pub(crate) async fn insert_token<E: Exec>(
    tx: &mut E,
    t: &NewVerification,
) -> Result<(), StoreError> {
    insert_link_token(tx, LinkTable::Verification, t).await
}

/// Makes `t` the user's only password-reset token, in `tx`.
pub(crate) async fn insert_reset_token<E: Exec>(
    tx: &mut E,
    t: &NewVerification,
) -> Result<(), StoreError> {
    tx.execute(sql("DELETE FROM password_reset_tokens WHERE user_id = $1").bind(t.user_id))
        .await?;
    insert_link_token(tx, LinkTable::PasswordReset, t).await
}

/// Queues `m` in the outbox, in `tx` (it is sent only if `tx` commits).
pub(crate) async fn insert_mail<E: Exec>(tx: &mut E, m: &QueuedMail) -> Result<(), StoreError> {
    let (sealed, text, html) = m.body.columns();
    tx.execute(
        sql("INSERT INTO mail_outbox (id, recipient, subject, body_text, body_html, body_sealed, created_at, \
             next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)")
        .bind(m.id)
        .bind(&m.to)
        .bind(&m.subject)
        .bind(text)
        .bind(html)
        .bind(sealed)
        .bind(m.created_at),
    )
    .await?;
    Ok(())
}

#[async_trait]
impl<B: Backend> VerificationStore for SqlStore<B> {
    async fn create_user_with_verification(
        &self,
        user: &NewUser,
        verification: Option<(&NewVerification, &QueuedMail)>,
    ) -> Result<User, StoreError> {
        let mut tx = self.begin().await?;
        let created = insert_user(&mut tx, user).await?;
        if let Some((token, mail)) = verification {
            insert_token(&mut tx, token).await?;
            insert_mail(&mut tx, mail).await?;
        }
        tx.commit().await?;
        Ok(created)
    }

    async fn issue_verification(
        &self,
        token: &NewVerification,
        mail: &QueuedMail,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        insert_token(&mut tx, token).await?;
        insert_mail(&mut tx, mail).await?;
        tx.commit().await
    }

    async fn consume_verification(
        &self,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<Uuid>, StoreError> {
        let mut tx = self.begin().await?;
        let row = tx
            .fetch_optional(
                sql(
                    "UPDATE email_verification_tokens SET used_at = $1 WHERE token_hash = $2 \
                     AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
                )
                .bind(now)
                .bind(token_hash),
            )
            .await?;
        let user_id: Option<Uuid> = row.map(|r| r.get("user_id")).transpose()?;
        if let Some(id) = user_id {
            tx.execute(
                sql("UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1), updated_at = $1 \
                     WHERE id = $2")
                .bind(now)
                .bind(id),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(user_id)
    }

    async fn issue_password_reset(
        &self,
        token: &NewVerification,
        mail: &QueuedMail,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        insert_reset_token(&mut tx, token).await?;
        insert_mail(&mut tx, mail).await?;
        tx.commit().await
    }

    async fn issue_email_change(
        &self,
        change: &NewEmailChange,
        mails: &[QueuedMail],
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let t = &change.token;
        let mut tx = self.begin().await?;
        // The user row first, as every stamp change takes it, then the asking
        // session's: a recovery or revocation either committed before (and
        // is seen here) or waits until this token exists (and deletes it).
        let q = format!(
            "SELECT security_stamp FROM users WHERE id = $1{}",
            B::lock(Lock::Update)
        );
        let stamp = tx.fetch_optional(sql(&q).bind(t.user_id)).await?;
        let stamp: Option<i64> = stamp.map(|r| r.get("security_stamp")).transpose()?;
        if stamp != Some(change.security_stamp) {
            return Ok(false);
        }
        let q = format!(
            "SELECT id FROM sessions WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL \
             AND idle_expires_at > $3 AND absolute_expires_at > $3{}",
            B::lock(Lock::Update)
        );
        let asking = tx
            .fetch_optional(sql(&q).bind(change.session_id).bind(t.user_id).bind(now))
            .await?;
        if asking.is_none() {
            return Ok(false);
        }
        tx.execute(sql("DELETE FROM email_change_tokens WHERE user_id = $1").bind(t.user_id))
            .await?;
        tx.execute(
            sql("INSERT INTO email_change_tokens (token_hash, user_id, new_email, new_email_normalized, \
                 created_at, expires_at, security_stamp, session_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&t.token_hash)
            .bind(t.user_id)
            .bind(&change.new_email)
            .bind(&change.new_email_normalized)
            .bind(t.created_at)
            .bind(t.expires_at)
            .bind(change.security_stamp)
            .bind(change.session_id),
        )
        .await?;
        for mail in mails {
            insert_mail(&mut tx, mail).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn pending_email_change(
        &self,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<PendingEmailChange>, StoreError> {
        let row = self
            .pool()
            .fetch_optional(
                sql("SELECT t.user_id, t.new_email FROM email_change_tokens t JOIN users u ON u.id = t.user_id \
                     WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.expires_at > $2 \
                     AND t.security_stamp = u.security_stamp")
                .bind(token_hash)
                .bind(now),
            )
            .await?;
        row.map(|r| {
            Ok(PendingEmailChange {
                user_id: r.get("user_id")?,
                new_email: r.get("new_email")?,
            })
        })
        .transpose()
    }

    async fn complete_email_change(
        &self,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
        mail: Option<&QueuedMail>,
    ) -> Result<Option<Uuid>, StoreError> {
        let mut tx = self.begin().await?;
        // The user row first, as password changes and sign-outs everywhere
        // lock it before the email-change tokens they delete (one lock
        // order); its stamp then cannot move until this commits.
        let q = format!(
            "SELECT u.security_stamp FROM users u JOIN email_change_tokens t ON t.user_id = u.id \
             WHERE t.token_hash = $1{}",
            B::lock(Lock::UpdateOf("u"))
        );
        let Some(stamp) = tx.fetch_optional(sql(&q).bind(token_hash)).await? else {
            return Ok(None);
        };
        let stamp: i64 = stamp.get("security_stamp")?;
        let row = tx
            .fetch_optional(
                sql(
                    "UPDATE email_change_tokens SET used_at = $1 WHERE token_hash = $2 \
                     AND used_at IS NULL AND expires_at > $1 AND security_stamp = $3 \
                     RETURNING user_id, new_email, new_email_normalized",
                )
                .bind(now)
                .bind(token_hash)
                .bind(stamp),
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let user_id: Uuid = row.get("user_id")?;
        let email: String = row.get("new_email")?;
        let normalized: String = row.get("new_email_normalized")?;
        // A taken address fails here on the unique constraint, rolling back the
        // whole transaction (the token stays unused).
        tx.execute(
            sql("UPDATE users SET email = $1, email_normalized = $2, \
                 email_verified_at = $3, updated_at = $3 WHERE id = $4")
            .bind(&email)
            .bind(&normalized)
            .bind(now)
            .bind(user_id),
        )
        .await?;
        crate::users::delete_mailed_links(&mut tx, user_id).await?;
        if let Some(mail) = mail {
            insert_mail(&mut tx, mail).await?;
        }
        tx.commit().await?;
        Ok(Some(user_id))
    }

    async fn password_reset_user(
        &self,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<Uuid>, StoreError> {
        let row = self
            .pool()
            .fetch_optional(
                sql("SELECT user_id FROM password_reset_tokens WHERE token_hash = $1 AND used_at IS NULL \
                     AND expires_at > $2")
                .bind(token_hash)
                .bind(now),
            )
            .await?;
        row.map(|r| r.get("user_id")).transpose()
    }

    async fn complete_password_reset(
        &self,
        token_hash: &[u8; 32],
        hash: &str,
        now: OffsetDateTime,
        keep: u32,
        after: &Aftermath<'_>,
    ) -> Result<Option<Uuid>, StoreError> {
        let mut tx = self.begin().await?;
        let row = tx
            .fetch_optional(
                sql(
                    "UPDATE password_reset_tokens SET used_at = $1 WHERE token_hash = $2 \
                     AND used_at IS NULL AND expires_at > $1 RETURNING user_id",
                )
                .bind(now)
                .bind(token_hash),
            )
            .await?;
        let user_id: Option<Uuid> = row.map(|r| r.get("user_id")).transpose()?;
        if let Some(id) = user_id {
            crate::users::set_password_in(&mut tx, id, hash, now, keep).await?;
            // The link reached the account's address (an address change
            // deletes every link mailed before it): the address is verified.
            tx.execute(
                sql("UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1) WHERE id = $2")
                    .bind(now)
                    .bind(id),
            )
            .await?;
            crate::aftermath::apply::<B>(&mut tx, id, after, now).await?;
        }
        tx.commit().await?;
        Ok(user_id)
    }
}

#[async_trait]
impl<B: Backend> OutboxStore for SqlStore<B> {
    async fn enqueue_mail(&self, mail: &QueuedMail) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        insert_mail(&mut tx, mail).await?;
        tx.commit().await
    }

    async fn claim_mail(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<QueuedMail>, StoreError> {
        let mut tx = self.begin().await?;
        let q = format!(
            "UPDATE mail_outbox SET next_attempt_at = $1, attempts = attempts + 1 WHERE id IN (SELECT id FROM mail_outbox \
             WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= $2 ORDER BY next_attempt_at LIMIT $3{}) \
             RETURNING id, recipient, subject, body_text, body_html, body_sealed, created_at, attempts",
            B::lock(Lock::UpdateSkipLocked)
        );
        let rows = tx
            .fetch_all(sql(&q).bind(now + lease).bind(now).bind(limit))
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                Ok(QueuedMail {
                    id: r.get("id")?,
                    to: r.get("recipient")?,
                    subject: r.get("subject")?,
                    body: QueuedBody::from_columns(
                        r.get("body_sealed")?,
                        r.get("body_text")?,
                        r.get("body_html")?,
                    ),
                    created_at: r.get("created_at")?,
                    attempts: r.get("attempts")?,
                })
            })
            .collect()
    }

    async fn mark_mail_sent(&self, id: Uuid, now: OffsetDateTime) -> Result<(), StoreError> {
        self.pool()
            .execute(
                sql("UPDATE mail_outbox SET sent_at = $1, last_error = NULL, body_text = '', body_html = NULL, \
                     body_sealed = NULL WHERE id = $2")
                .bind(now)
                .bind(id),
            )
            .await?;
        Ok(())
    }

    async fn mark_mail_retry(
        &self,
        id: Uuid,
        next_attempt_at: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError> {
        self.pool()
            .execute(
                sql("UPDATE mail_outbox SET next_attempt_at = $1, last_error = $2 WHERE id = $3 AND sent_at IS NULL")
                    .bind(next_attempt_at)
                    .bind(error)
                    .bind(id),
            )
            .await?;
        Ok(())
    }

    async fn mark_mail_failed(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError> {
        self.pool()
            .execute(
                sql("UPDATE mail_outbox SET failed_at = $1, last_error = $2, body_text = '', body_html = NULL, \
                     body_sealed = NULL WHERE id = $3 AND sent_at IS NULL")
                .bind(now)
                .bind(error)
                .bind(id),
            )
            .await?;
        Ok(())
    }

    async fn pending_mail(&self) -> Result<u64, StoreError> {
        let row = self
            .pool()
            .fetch_one(sql(
                "SELECT COUNT(*) AS pending FROM mail_outbox WHERE sent_at IS NULL AND failed_at IS NULL",
            ))
            .await?;
        Ok(u64::try_from(row.get::<i64>("pending")?).unwrap_or(0))
    }
}
