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

/// The least string above every string that starts with `prefix`, in code
/// point order: the prefix with its last character raised by one (surrogates
/// skipped); `None` when there is none (only U+10FFFF characters).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

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
        // $1 now, $2 after (or NULL), $3 limit, $4 (and $5) the search term.
        // Each condition is one an index serves: the id range (an `OR` with
        // `$2 IS NULL` would make SQLite walk the list from its start), and a
        // name prefix as the range [prefix, its successor) in code point order
        // (`users_name`), not a function of every row's name.
        let position = if after.is_some() {
            "id > $2"
        } else {
            "$2 IS NULL"
        };
        let end = match search {
            UserSearch::NamePrefix(prefix) => prefix_end(prefix),
            _ => None,
        };
        let order = B::CODE_POINT_ORDER;
        let filter = match (search, &end) {
            (UserSearch::All, _) => String::new(),
            (UserSearch::Email(_), _) => " AND email_normalized = $4".to_owned(),
            (UserSearch::Id(_), _) => " AND id = $4".to_owned(),
            (UserSearch::NamePrefix(_), None) => format!(" AND name{order} >= $4"),
            (UserSearch::NamePrefix(_), Some(_)) => {
                format!(" AND name{order} >= $4 AND name{order} < $5")
            }
        };
        let q = format!(
            "SELECT {COLUMNS}, {MFA}, {ROLES}, {SESSION_COUNT} FROM users \
             WHERE {position}{filter} ORDER BY id LIMIT $3"
        );
        let query = sql(&q).bind(now).bind(after).bind(limit);
        let query = match search {
            UserSearch::All => query,
            UserSearch::Email(email) => query.bind(email.as_str()),
            UserSearch::Id(id) => query.bind(*id),
            UserSearch::NamePrefix(prefix) => match end {
                Some(end) => query.bind(prefix.as_str()).bind(end),
                None => query.bind(prefix.as_str()),
            },
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
        crate::events::insert_event(&mut tx, event);
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
        crate::events::insert_event(&mut tx, event);
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
        crate::events::redact_user_events(&mut tx, user_id).await?;
        if let Some(event) = event {
            crate::events::insert_event(&mut tx, event);
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
        crate::events::insert_event(&mut tx, account.event);
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
        crate::events::insert_event(&mut tx, event);
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
            crate::events::insert_event(&mut tx, &account.event);
        }
        tx.commit().await?;
        Ok(AdminGuarded::Done(created))
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn a_prefix_range_ends_at_the_next_string_in_code_point_order() {
        assert_eq!(prefix_end("Ada").as_deref(), Some("Adb"));
        assert_eq!(prefix_end("Zoë").as_deref(), Some("Zoì"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}\u{10FFFF}"), None);
        assert_eq!(prefix_end(""), None);
        for name in ["Ada", "Ada Lovelace", "Ada\u{10FFFF}x"] {
            assert!(name >= "Ada" && name < prefix_end("Ada").unwrap().as_str());
        }
        assert!("Adb" >= prefix_end("Ada").unwrap().as_str());
    }
}
