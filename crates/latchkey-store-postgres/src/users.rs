//! `UserStore` on PostgreSQL.

use async_trait::async_trait;
use latchkey_core::account::{NewUser, User};
use latchkey_core::ports::{Aftermath, StoreError, UserStore};
use sqlx::postgres::PgRow;
use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{map_error, PostgresStore};

const COLUMNS: &str = "id, email, email_normalized, name, password_hash, email_verified_at, \
     disabled_at, failed_login_count, last_login_at, created_at, updated_at, password_changed_at, security_stamp";

/// Counts of a user's factors, as columns of a query over `users`.
const MFA: &str = crate::mfa::MFA_COLUMNS;
/// The same for a row just inserted (no factor yet).
const NO_MFA: &str = "0::BIGINT AS mfa_totp, 0::BIGINT AS mfa_codes, 0::BIGINT AS mfa_webauthn";

fn user_from_row(row: &PgRow) -> Result<User, StoreError> {
    Ok(User {
        id: row.try_get("id").map_err(map_error)?,
        email: row.try_get("email").map_err(map_error)?,
        email_normalized: row.try_get("email_normalized").map_err(map_error)?,
        name: row.try_get("name").map_err(map_error)?,
        password_hash: row.try_get("password_hash").map_err(map_error)?,
        email_verified_at: row.try_get("email_verified_at").map_err(map_error)?,
        disabled_at: row.try_get("disabled_at").map_err(map_error)?,
        failed_login_count: row.try_get("failed_login_count").map_err(map_error)?,
        last_login_at: row.try_get("last_login_at").map_err(map_error)?,
        created_at: row.try_get("created_at").map_err(map_error)?,
        updated_at: row.try_get("updated_at").map_err(map_error)?,
        password_changed_at: match row.try_get("password_changed_at").map_err(map_error)? {
            Some(at) => at,
            None => row.try_get("created_at").map_err(map_error)?,
        },
        mfa: crate::mfa::summary_from_row(row)?,
        security_stamp: row.try_get("security_stamp").map_err(map_error)?,
    })
}

/// Inserts an account on any executor (pool or transaction).
pub(crate) async fn insert_user<'e, E>(executor: E, user: &NewUser) -> Result<User, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    let sql = format!(
            "INSERT INTO users (id, email, email_normalized, name, password_hash, created_at, updated_at, password_changed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, $6) RETURNING {COLUMNS}, {NO_MFA}"
        );
    let row = sqlx::query(&sql)
        .bind(user.id)
        .bind(&user.email)
        .bind(&user.email_normalized)
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(user.created_at)
        .fetch_one(executor)
        .await
        .map_err(map_error)?;
    user_from_row(&row)
}

/// Inside `tx`: the current hash joins the history, `hash` becomes current
/// (stamping `password_changed_at`), and only the `keep` newest history entries
/// stay.
pub(crate) async fn set_password_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    user_id: Uuid,
    hash: &str,
    now: OffsetDateTime,
    keep: u32,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO password_history (user_id, password_hash, created_at) \
         SELECT id, password_hash, $1 FROM users WHERE id = $2",
    )
    .bind(now)
    .bind(user_id)
    .execute(&mut **tx)
    .await
    .map_err(map_error)?;
    sqlx::query(
        "UPDATE users SET password_hash = $1, updated_at = $2, password_changed_at = $2 WHERE id = $3",
    )
        .bind(hash)
        .bind(now)
        .bind(user_id)
        .execute(&mut **tx)
        .await
        .map_err(map_error)?;
    sqlx::query(
        "DELETE FROM password_history WHERE user_id = $1 AND id NOT IN \
         (SELECT id FROM password_history WHERE user_id = $1 ORDER BY id DESC LIMIT $2)",
    )
    .bind(user_id)
    .bind(i64::from(keep))
    .execute(&mut **tx)
    .await
    .map_err(map_error)?;
    delete_mailed_links(tx, user_id).await
}

/// Deletes the user's pending password-reset and email-verification tokens,
/// in `tx` (after a password or email change, links mailed before it must not
/// work any more).
pub(crate) async fn delete_mailed_links(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    user_id: Uuid,
) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM password_reset_tokens WHERE user_id = $1",
        "DELETE FROM email_verification_tokens WHERE user_id = $1",
    ] {
        sqlx::query(sql)
            .bind(user_id)
            .execute(&mut **tx)
            .await
            .map_err(map_error)?;
    }
    Ok(())
}

#[async_trait]
impl UserStore for PostgresStore {
    async fn create_user(&self, user: &NewUser) -> Result<User, StoreError> {
        insert_user(self.pool(), user).await
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {COLUMNS}, {MFA} FROM users WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(map_error)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_email(&self, email_normalized: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {COLUMNS}, {MFA} FROM users WHERE email_normalized = $1");
        let row = sqlx::query(&sql)
            .bind(email_normalized)
            .fetch_optional(self.pool())
            .await
            .map_err(map_error)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn record_login_failure(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<i32, StoreError> {
        let count: Option<i32> = sqlx::query_scalar(
            "UPDATE users SET failed_login_count = failed_login_count + 1, updated_at = $1 WHERE id = $2 \
             AND (last_login_at IS NULL OR last_login_at <= $1) RETURNING failed_login_count",
        )
        .bind(now)
        .bind(user_id)
        .fetch_optional(self.pool())
        .await
        .map_err(map_error)?;
        Ok(count.unwrap_or(0))
    }

    async fn record_login_success(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET failed_login_count = 0, last_login_at = $1, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(user_id)
            .execute(self.pool())
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn mark_email_verified(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1), updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(user_id)
            .execute(self.pool())
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn update_name(
        &self,
        user_id: Uuid,
        name: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET name = $1, updated_at = $2 WHERE id = $3")
            .bind(name)
            .bind(now)
            .bind(user_id)
            .execute(self.pool())
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn update_password_hash(
        &self,
        user_id: Uuid,
        old: &str,
        new: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3 AND password_hash = $4")
            .bind(new)
            .bind(now)
            .bind(user_id)
            .bind(old)
            .execute(self.pool())
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn change_password_hash(
        &self,
        user_id: Uuid,
        hash: &str,
        now: OffsetDateTime,
        keep: u32,
        after: &Aftermath<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await.map_err(map_error)?;
        set_password_in(&mut tx, user_id, hash, now, keep).await?;
        crate::aftermath::apply(&mut tx, user_id, after, now).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(())
    }

    async fn password_history(&self, user_id: Uuid, limit: u32) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT password_hash FROM password_history WHERE user_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(map_error)
    }

    async fn stale_email_normalizations(
        &self,
        limit: u32,
    ) -> Result<Vec<(Uuid, String)>, StoreError> {
        sqlx::query_as(
            "SELECT id, email FROM users WHERE email_normalization < 2 ORDER BY id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(map_error)
    }

    async fn renormalize_email(&self, user_id: Uuid, normalized: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await.map_err(map_error)?;
        let moved = sqlx::query(
            "UPDATE users SET email_normalized = $1, email_normalization = 2 WHERE id = $2 \
             AND NOT EXISTS (SELECT 1 FROM users WHERE email_normalized = $1 AND id <> $2)",
        )
        .bind(normalized)
        .bind(user_id)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?
        .rows_affected()
            > 0;
        if !moved {
            sqlx::query("UPDATE users SET email_normalization = 2 WHERE id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(map_error)?;
        }
        tx.commit().await.map_err(map_error)?;
        Ok(moved)
    }
}
