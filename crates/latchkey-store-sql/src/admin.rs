//! `AdminStore`.

use async_trait::async_trait;
use latchkey_core::audit::SecurityEvent;
use latchkey_core::mail::QueuedMail;
use latchkey_core::ports::{
    AccountChange, AdminGuarded, AdminStore, AdminUserRow, ImportedAccount, NewAccount, StoreError,
    UserSearch,
};
use latchkey_core::session::RevokeReason;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::backend::{Backend, Exec, Transaction};
use crate::query::sql;
use crate::row::{Row, RowExt};
use crate::users::{user_from_row, COLUMNS, MFA, ROLES};
use crate::SqlStore;

/// Live sessions of the user, as a column of a query over `users` (`$1`: now).
const SESSION_COUNT: &str = "(SELECT COUNT(*) FROM sessions s WHERE s.user_id = users.id \
     AND s.revoked_at IS NULL AND s.idle_expires_at > $1 AND s.absolute_expires_at > $1) \
     AS session_count";

fn admin_row<R: Row>(row: &R) -> Result<AdminUserRow, StoreError> {
    Ok(AdminUserRow {
        user: user_from_row(row)?,
        session_count: u32::try_from(row.get::<i64>("session_count")?).unwrap_or(u32::MAX),
    })
}

#[async_trait]
impl<B: Backend> AdminStore for SqlStore<B> {
    async fn search_users(
        &self,
        search: &UserSearch,
        after: Option<Uuid>,
        limit: u32,
        now: OffsetDateTime,
    ) -> Result<Vec<AdminUserRow>, StoreError> {
        // $1 now, $2 after (or NULL), $3 limit, $4 the search term.
        let filter = match search {
            UserSearch::All => "",
            UserSearch::Email(_) => " AND email_normalized = $4",
            UserSearch::Id(_) => " AND id = $4",
            UserSearch::NamePrefix(_) => " AND substr(name, 1, CAST($5 AS INTEGER)) = $4",
        };
        let q = format!(
            "SELECT {COLUMNS}, {MFA}, {ROLES}, {SESSION_COUNT} FROM users \
             WHERE ($2 IS NULL OR id > $2){filter} ORDER BY id LIMIT $3"
        );
        let query = sql(&q).bind(now).bind(after).bind(limit);
        let query = match search {
            UserSearch::All => query,
            UserSearch::Email(email) => query.bind(email.as_str()),
            UserSearch::Id(id) => query.bind(*id),
            UserSearch::NamePrefix(prefix) => query
                .bind(prefix.as_str())
                .bind(u32::try_from(prefix.chars().count()).unwrap_or(u32::MAX)),
        };
        let rows = self.pool().fetch_all(query).await?;
        rows.iter().map(admin_row).collect()
    }

    async fn disable_user(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
        event: &SecurityEvent,
    ) -> Result<AdminGuarded<()>, StoreError> {
        let mut tx = self.begin().await?;
        if let Some(refused) = crate::roles::refuse_last_admin::<B>(&mut tx, user_id).await? {
            return Ok(refused);
        }
        tx.execute(
            sql(
                "UPDATE users SET disabled_at = CASE WHEN disabled_at IS NULL THEN $1 \
                 ELSE disabled_at END, updated_at = $1 WHERE id = $2",
            )
            .bind(now)
            .bind(user_id),
        )
        .await?;
        crate::aftermath::revoke_everything::<B>(
            &mut tx,
            user_id,
            None,
            RevokeReason::AccountDisabled,
            now,
        )
        .await?;
        crate::sessions::insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(AdminGuarded::Done(()))
    }

    async fn enable_user(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
        event: &SecurityEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let changed = tx
            .execute(
                sql("UPDATE users SET disabled_at = NULL, updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(user_id),
            )
            .await?;
        if changed == 0 {
            return Ok(false);
        }
        crate::sessions::insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn delete_user(
        &self,
        user_id: Uuid,
        event: Option<&SecurityEvent>,
    ) -> Result<AdminGuarded<()>, StoreError> {
        let mut tx = self.begin().await?;
        if let Some(refused) = crate::roles::refuse_last_admin::<B>(&mut tx, user_id).await? {
            return Ok(refused);
        }
        tx.execute(sql("DELETE FROM users WHERE id = $1").bind(user_id))
            .await?;
        if let Some(event) = event {
            crate::sessions::insert_event(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(AdminGuarded::Done(()))
    }

    async fn create_account(
        &self,
        account: &NewAccount<'_>,
    ) -> Result<AdminGuarded<()>, StoreError> {
        let user = account.user;
        let mut tx = self.begin().await?;
        if let Some(missing) = crate::roles::missing_role::<B>(&mut tx, account.roles).await? {
            return Ok(AdminGuarded::UnknownRole(missing));
        }
        crate::users::insert_user(&mut tx, user).await?;
        if account.email_verified {
            tx.execute(
                sql("UPDATE users SET email_verified_at = $1 WHERE id = $2")
                    .bind(user.created_at)
                    .bind(user.id),
            )
            .await?;
        }
        crate::roles::insert_user_roles(&mut tx, user.id, account.roles, user.created_at).await?;
        if let Some((token, mail)) = account.invite {
            crate::mail::insert_reset_token(&mut tx, token).await?;
            crate::mail::insert_mail(&mut tx, mail).await?;
        }
        crate::sessions::insert_event(&mut tx, account.event).await?;
        tx.commit().await?;
        Ok(AdminGuarded::Done(()))
    }

    async fn change_account(
        &self,
        user_id: Uuid,
        change: &AccountChange,
        now: OffsetDateTime,
        notice: Option<&QueuedMail>,
        event: &SecurityEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let changed = tx
            .execute(
                sql("UPDATE users SET updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(user_id),
            )
            .await?;
        if changed == 0 {
            return Ok(false);
        }
        if let Some(name) = &change.name {
            tx.execute(
                sql("UPDATE users SET name = $1 WHERE id = $2")
                    .bind(name.as_deref())
                    .bind(user_id),
            )
            .await?;
        }
        if let Some((email, normalized)) = &change.email {
            // A taken address fails here on the unique constraint. The new
            // address is verified only as `email_verified` says (below).
            tx.execute(
                sql(
                    "UPDATE users SET email = $1, email_normalized = $2, email_verified_at = NULL \
                     WHERE id = $3",
                )
                .bind(email.as_str())
                .bind(normalized.as_str())
                .bind(user_id),
            )
            .await?;
            crate::users::delete_mailed_links(&mut tx, user_id).await?;
            tx.execute(sql("DELETE FROM email_change_tokens WHERE user_id = $1").bind(user_id))
                .await?;
        }
        match change.email_verified {
            Some(true) => {
                tx.execute(
                    sql(
                        "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1) \
                         WHERE id = $2",
                    )
                    .bind(now)
                    .bind(user_id),
                )
                .await?;
            }
            Some(false) => {
                tx.execute(
                    sql("UPDATE users SET email_verified_at = NULL WHERE id = $1").bind(user_id),
                )
                .await?;
            }
            None => {}
        }
        if let Some(mail) = notice {
            crate::mail::insert_mail(&mut tx, mail).await?;
        }
        crate::sessions::insert_event(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn import_accounts(
        &self,
        accounts: &[ImportedAccount],
    ) -> Result<AdminGuarded<u64>, StoreError> {
        let mut roles: Vec<String> = accounts.iter().flat_map(|a| a.roles.clone()).collect();
        roles.sort();
        roles.dedup();
        let mut tx = self.begin().await?;
        if let Some(missing) = crate::roles::missing_role::<B>(&mut tx, &roles).await? {
            return Ok(AdminGuarded::UnknownRole(missing));
        }
        let mut created = 0;
        for account in accounts {
            let user = &account.user;
            let inserted = tx
                .execute(
                    sql(
                        "INSERT INTO users (id, email, email_normalized, name, password_hash, \
                         email_verified_at, created_at, updated_at, password_changed_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7) ON CONFLICT DO NOTHING",
                    )
                    .bind(user.id)
                    .bind(&user.email)
                    .bind(&user.email_normalized)
                    .bind(&user.name)
                    .bind(&user.password_hash)
                    .bind(account.email_verified.then_some(user.created_at))
                    .bind(user.created_at),
                )
                .await?;
            if inserted == 0 {
                continue;
            }
            created += 1;
            crate::roles::insert_user_roles(&mut tx, user.id, &account.roles, user.created_at)
                .await?;
            crate::sessions::insert_event(&mut tx, &account.event).await?;
        }
        tx.commit().await?;
        Ok(AdminGuarded::Done(created))
    }
}
