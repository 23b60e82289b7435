//! `UserStore`.

use async_trait::async_trait;
use latchkey_core::account::{NewUser, User};
use latchkey_core::ports::{Aftermath, StoreError, UserStore};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::backend::{Backend, Exec, Transaction};
use crate::query::sql;
use crate::row::{Row, RowExt};
use crate::SqlStore;

pub(crate) const COLUMNS: &str = "id, email, email_normalized, name, password_hash, email_verified_at, \
     disabled_at, failed_login_count, last_login_at, created_at, updated_at, password_changed_at, security_stamp";

/// Counts of a user's factors, as columns of a query over `users`.
pub(crate) const MFA: &str = crate::mfa::MFA_COLUMNS;
/// The same for a row just inserted (no factor yet).
const NO_MFA: &str = "CAST(0 AS BIGINT) AS mfa_totp, CAST(0 AS BIGINT) AS mfa_codes, \
     CAST(0 AS BIGINT) AS mfa_webauthn";

/// The user's role names, space-separated in name order (NULL: none), as a
/// column of a query over `users`.
pub(crate) const ROLES: &str = "(SELECT string_agg(r.role_name, ' ' ORDER BY r.role_name) \
     FROM user_roles r WHERE r.user_id = users.id) AS roles";
/// The same for a row just inserted (no role yet).
const NO_ROLES: &str = "CAST(NULL AS TEXT) AS roles";

pub(crate) fn user_from_row<R: Row>(row: &R) -> Result<User, StoreError> {
    let created_at = row.get("created_at")?;
    Ok(User {
        id: row.get("id")?,
        email: row.get("email")?,
        email_normalized: row.get("email_normalized")?,
        name: row.get("name")?,
        password_hash: row.get("password_hash")?,
        email_verified_at: row.get("email_verified_at")?,
        disabled_at: row.get("disabled_at")?,
        failed_login_count: row.get("failed_login_count")?,
        last_login_at: row.get("last_login_at")?,
        created_at,
        updated_at: row.get("updated_at")?,
        password_changed_at: row
            .get::<Option<OffsetDateTime>>("password_changed_at")?
            .unwrap_or(created_at),
        mfa: crate::mfa::summary_from_row(row)?,
        security_stamp: row.get("security_stamp")?,
        roles: latchkey_core::access::decode_role_names(
            row.get::<Option<String>>("roles")?.as_deref(),
        ),
    })
}

/// Inserts an account on the pool or in a transaction.
pub(crate) async fn insert_user<E: Exec>(ex: &mut E, user: &NewUser) -> Result<User, StoreError> {
    let sql_text = format!(
        "INSERT INTO users (id, email, email_normalized, name, password_hash, created_at, updated_at, \
         password_changed_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $6) RETURNING {COLUMNS}, {NO_MFA}, {NO_ROLES}"
    );
    let row = ex
        .fetch_one(
            sql(&sql_text)
                .bind(user.id)
                .bind(&user.email)
                .bind(&user.email_normalized)
                .bind(&user.name)
                .bind(&user.password_hash)
                .bind(user.created_at),
        )
        .await?;
    user_from_row(&row)
}

/// Inside `tx`: the current hash joins the history, `hash` becomes current
/// (stamping `password_changed_at`), only the `keep` newest history entries
/// stay, and the links mailed before the change stop working.
pub(crate) async fn set_password_in<E: Exec>(
    tx: &mut E,
    user_id: Uuid,
    hash: &str,
    now: OffsetDateTime,
    keep: u32,
) -> Result<(), StoreError> {
    tx.execute(
        sql(
            "INSERT INTO password_history (user_id, password_hash, created_at) \
             SELECT id, password_hash, $1 FROM users WHERE id = $2",
        )
        .bind(now)
        .bind(user_id),
    )
    .await?;
    tx.execute(
        sql("UPDATE users SET password_hash = $1, updated_at = $2, password_changed_at = $2 WHERE id = $3")
            .bind(hash)
            .bind(now)
            .bind(user_id),
    )
    .await?;
    tx.execute(
        sql(
            "DELETE FROM password_history WHERE user_id = $1 AND id NOT IN \
             (SELECT id FROM password_history WHERE user_id = $1 ORDER BY id DESC LIMIT $2)",
        )
        .bind(user_id)
        .bind(keep),
    )
    .await?;
    delete_mailed_links(tx, user_id).await
}

/// Deletes the user's pending password-reset and email-verification tokens,
/// in `tx` (after a password or email change, links mailed before it must not
/// work any more).
pub(crate) async fn delete_mailed_links<E: Exec>(
    tx: &mut E,
    user_id: Uuid,
) -> Result<(), StoreError> {
    for statement in [
        "DELETE FROM password_reset_tokens WHERE user_id = $1",
        "DELETE FROM email_verification_tokens WHERE user_id = $1",
    ] {
        tx.execute(sql(statement).bind(user_id)).await?;
    }
    Ok(())
}

#[async_trait]
impl<B: Backend> UserStore for SqlStore<B> {
    async fn create_user(&self, user: &NewUser) -> Result<User, StoreError> {
        insert_user(&mut self.pool(), user).await
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let q = format!("SELECT {COLUMNS}, {MFA}, {ROLES} FROM users WHERE id = $1");
        let row = self.pool().fetch_optional(sql(&q).bind(id)).await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_email(&self, email_normalized: &str) -> Result<Option<User>, StoreError> {
        let q = format!("SELECT {COLUMNS}, {MFA}, {ROLES} FROM users WHERE email_normalized = $1");
        let row = self
            .pool()
            .fetch_optional(sql(&q).bind(email_normalized))
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn record_login_failure(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<i32, StoreError> {
        let row = self
            .pool()
            .fetch_optional(
                sql("UPDATE users SET failed_login_count = failed_login_count + 1, updated_at = $1 \
                     WHERE id = $2 AND (last_login_at IS NULL OR last_login_at <= $1) \
                     RETURNING failed_login_count")
                .bind(now)
                .bind(user_id),
            )
            .await?;
        row.map_or(Ok(0), |r| r.get("failed_login_count"))
    }

    async fn record_login_success(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.pool()
            .execute(
                sql("UPDATE users SET failed_login_count = 0, last_login_at = $1, updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(user_id),
            )
            .await?;
        Ok(())
    }

    async fn mark_email_verified(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.pool()
            .execute(
                sql("UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1), updated_at = $1 \
                     WHERE id = $2")
                .bind(now)
                .bind(user_id),
            )
            .await?;
        Ok(())
    }

    async fn update_name(
        &self,
        user_id: Uuid,
        name: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.pool()
            .execute(
                sql("UPDATE users SET name = $1, updated_at = $2 WHERE id = $3")
                    .bind(name)
                    .bind(now)
                    .bind(user_id),
            )
            .await?;
        Ok(())
    }

    async fn update_password_hash(
        &self,
        user_id: Uuid,
        old: &str,
        new: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let changed = self
            .pool()
            .execute(
                sql("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3 AND password_hash = $4")
                    .bind(new)
                    .bind(now)
                    .bind(user_id)
                    .bind(old),
            )
            .await?;
        Ok(changed == 1)
    }

    async fn change_password_hash(
        &self,
        user_id: Uuid,
        hash: &str,
        now: OffsetDateTime,
        keep: u32,
        after: &Aftermath<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        set_password_in(&mut tx, user_id, hash, now, keep).await?;
        crate::aftermath::apply::<B>(&mut tx, user_id, after, now).await?;
        tx.commit().await
    }

    async fn password_history(&self, user_id: Uuid, limit: u32) -> Result<Vec<String>, StoreError> {
        let rows = self
            .pool()
            .fetch_all(
                sql("SELECT password_hash FROM password_history WHERE user_id = $1 ORDER BY id DESC LIMIT $2")
                    .bind(user_id)
                    .bind(limit),
            )
            .await?;
        rows.iter().map(|r| r.get("password_hash")).collect()
    }

    async fn stale_email_normalizations(
        &self,
        limit: u32,
    ) -> Result<Vec<(Uuid, String)>, StoreError> {
        let rows = self
            .pool()
            .fetch_all(
                sql("SELECT id, email FROM users WHERE email_normalization < 2 ORDER BY id LIMIT $1")
                    .bind(limit),
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.get("id")?, r.get("email")?)))
            .collect()
    }

    async fn renormalize_email(&self, user_id: Uuid, normalized: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let moved = tx
            .execute(
                sql("UPDATE users SET email_normalized = $1, email_normalization = 2 WHERE id = $2 \
                     AND NOT EXISTS (SELECT 1 FROM users WHERE email_normalized = $1 AND id <> $2)")
                .bind(normalized)
                .bind(user_id),
            )
            .await?
            > 0;
        if !moved {
            tx.execute(sql("UPDATE users SET email_normalization = 2 WHERE id = $1").bind(user_id))
                .await?;
        }
        tx.commit().await?;
        Ok(moved)
    }
}
