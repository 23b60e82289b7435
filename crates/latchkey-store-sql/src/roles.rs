//! `RoleStore`, and the guard that keeps one administrator.

use async_trait::async_trait;
use latchkey_core::access::{Permissions, Role, ADMIN_ROLE, MAX_ROLES_PER_USER};
use latchkey_core::audit::SecurityEvent;
use latchkey_core::ports::{Access, AdminGuarded, RoleChange, RoleStore, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::backend::{Backend, Exec, Lock, Transaction};
use crate::query::{placeholders, sql};
use crate::row::{Row, RowExt};
use crate::SqlStore;

fn role_from_row<R: Row>(row: &R) -> Result<Role, StoreError> {
    Ok(Role {
        name: row.get("name")?,
        description: row.get("description")?,
        permissions: Permissions::decode(&row.get::<String>("permissions")?),
        builtin: row.get("builtin")?,
        created_at: row.get("created_at")?,
    })
}

/// The first of `roles` that does not exist, locking those that do against
/// deletion until the transaction ends.
pub(crate) async fn missing_role<B: Backend>(
    tx: &mut crate::events::Tx<B>,
    roles: &[String],
) -> Result<Option<String>, StoreError> {
    if roles.is_empty() {
        return Ok(None);
    }
    let q = format!(
        "SELECT name FROM roles WHERE name IN ({}){}",
        placeholders(1, roles.len()),
        B::lock(Lock::NoKeyUpdate)
    );
    let mut query = sql(&q);
    for r in roles {
        query = query.bind(r.as_str());
    }
    let found = tx
        .fetch_all(query)
        .await?
        .iter()
        .map(|r| r.get::<String>("name"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(roles.iter().find(|r| !found.contains(r)).cloned())
}

/// Gives `user_id` each of `roles` (which exist: see [`missing_role`]).
pub(crate) async fn insert_user_roles<E: Exec>(
    tx: &mut E,
    user_id: Uuid,
    roles: &[String],
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    for role in roles {
        tx.execute(
            sql("INSERT INTO user_roles (user_id, role_name, granted_at) VALUES ($1, $2, $3)")
                .bind(user_id)
                .bind(role.as_str())
                .bind(now),
        )
        .await?;
    }
    Ok(())
}

/// The refusal of a change that must not remove the last enabled admin:
/// `NoUser` for no such account, `LastAdmin` when it is that admin, `None`
/// when the change may go on (the locks of [`last_admin`] are held).
pub(crate) async fn refuse_last_admin<B: Backend>(
    tx: &mut crate::events::Tx<B>,
    user_id: Uuid,
) -> Result<Option<AdminGuarded<()>>, StoreError> {
    Ok(match last_admin::<B>(tx, user_id).await? {
        None => Some(AdminGuarded::NoUser),
        Some(true) => Some(AdminGuarded::LastAdmin),
        Some(false) => None,
    })
}

/// Inside `tx`, before a change that may take the `admin` role from
/// `user_id`: locks the `admin` role's row (first, in every such change),
/// then the user's row, and answers whether the user is the last enabled
/// holder of the role. `None`: no such user.
pub(crate) async fn last_admin<B: Backend>(
    tx: &mut crate::events::Tx<B>,
    user_id: Uuid,
) -> Result<Option<bool>, StoreError> {
    let role = format!(
        "SELECT name FROM roles WHERE name = $1{}",
        B::lock(Lock::Update)
    );
    tx.fetch_optional(sql(&role).bind(ADMIN_ROLE)).await?;
    let user = format!(
        "SELECT disabled_at, EXISTS (SELECT 1 FROM user_roles r WHERE r.user_id = users.id \
         AND r.role_name = $2) AS is_admin FROM users WHERE id = $1{}",
        B::lock(Lock::Update)
    );
    let Some(row) = tx
        .fetch_optional(sql(&user).bind(user_id).bind(ADMIN_ROLE))
        .await?
    else {
        return Ok(None);
    };
    let disabled: Option<OffsetDateTime> = row.get("disabled_at")?;
    let is_admin: bool = row.get("is_admin")?;
    if disabled.is_some() || !is_admin {
        return Ok(Some(false));
    }
    let others = tx
        .fetch_one(
            sql(
                "SELECT COUNT(*) AS n FROM user_roles r JOIN users u ON u.id = r.user_id \
                 WHERE r.role_name = $1 AND u.disabled_at IS NULL AND u.id <> $2",
            )
            .bind(ADMIN_ROLE)
            .bind(user_id),
        )
        .await?;
    Ok(Some(others.get::<i64>("n")? == 0))
}

/// The role names of `user_id`, sorted, inside `ex`.
async fn user_role_names<E: Exec>(ex: &mut E, user_id: Uuid) -> Result<Vec<String>, StoreError> {
    let rows = ex
        .fetch_all(
            sql("SELECT role_name FROM user_roles WHERE user_id = $1 ORDER BY role_name")
                .bind(user_id),
        )
        .await?;
    rows.iter().map(|r| r.get("role_name")).collect()
}

#[async_trait]
impl<B: Backend> RoleStore for SqlStore<B> {
    async fn roles(&self) -> Result<Vec<Role>, StoreError> {
        let rows = self
            .pool()
            .fetch_all(sql(
                "SELECT name, description, permissions, builtin, created_at FROM roles ORDER BY name",
            ))
            .await?;
        rows.iter().map(role_from_row).collect()
    }

    async fn create_role(
        &self,
        role: &Role,
        event: Option<&SecurityEvent>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let created = tx
            .fetch_optional(
                sql(
                    "INSERT INTO roles (name, description, permissions, builtin, created_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING name",
                )
                .bind(&role.name)
                .bind(&role.description)
                .bind(role.permissions.encode())
                .bind(role.builtin)
                .bind(role.created_at),
            )
            .await?
            .is_some();
        if created {
            if let Some(event) = event {
                crate::events::insert_event(&mut tx, event);
            }
            tx.commit().await?;
        }
        Ok(created)
    }

    async fn delete_role(
        &self,
        name: &str,
        event: Option<&SecurityEvent>,
    ) -> Result<Option<Vec<Uuid>>, StoreError> {
        let mut tx = self.begin().await?;
        let q = format!(
            "SELECT name FROM roles WHERE name = $1 AND builtin = $2{}",
            B::lock(Lock::Update)
        );
        if tx
            .fetch_optional(sql(&q).bind(name).bind(false))
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let holders = tx
            .fetch_all(sql("SELECT user_id FROM user_roles WHERE role_name = $1").bind(name))
            .await?
            .iter()
            .map(|r| r.get("user_id"))
            .collect::<Result<Vec<Uuid>, _>>()?;
        tx.execute(sql("DELETE FROM user_roles WHERE role_name = $1").bind(name))
            .await?;
        tx.execute(sql("DELETE FROM roles WHERE name = $1").bind(name))
            .await?;
        if let Some(event) = event {
            crate::events::insert_event(&mut tx, event);
        }
        tx.commit().await?;
        Ok(Some(holders))
    }

    async fn access(&self, user_id: Uuid) -> Result<Option<Access>, StoreError> {
        let mut pool = self.pool();
        let Some(user) = pool
            .fetch_optional(sql("SELECT disabled_at FROM users WHERE id = $1").bind(user_id))
            .await?
        else {
            return Ok(None);
        };
        let disabled = user.get::<Option<OffsetDateTime>>("disabled_at")?.is_some();
        let rows = pool
            .fetch_all(
                sql(
                    "SELECT ro.name, ro.description, ro.permissions, ro.builtin, ro.created_at \
                     FROM user_roles r JOIN roles ro ON ro.name = r.role_name WHERE r.user_id = $1",
                )
                .bind(user_id),
            )
            .await?;
        let mut permissions = Permissions::default();
        for row in &rows {
            permissions = permissions.union(role_from_row(row)?.grants());
        }
        Ok(Some(Access {
            permissions,
            disabled,
        }))
    }

    async fn set_user_roles(
        &self,
        user_id: Uuid,
        change: RoleChange<'_>,
        now: OffsetDateTime,
        event: &(dyn for<'r> Fn(&'r [String], &'r [String]) -> Option<SecurityEvent> + Send + Sync),
    ) -> Result<AdminGuarded<Vec<String>>, StoreError> {
        let mut tx = self.begin().await?;
        // The user's row is locked here: `before` cannot change under us.
        let Some(last) = last_admin::<B>(&mut tx, user_id).await? else {
            return Ok(AdminGuarded::NoUser);
        };
        let before = user_role_names(&mut tx, user_id).await?;
        let roles = change.apply(&before);
        if roles.len() > MAX_ROLES_PER_USER {
            return Ok(AdminGuarded::TooManyRoles);
        }
        if last && !roles.iter().any(|r| r == ADMIN_ROLE) {
            return Ok(AdminGuarded::LastAdmin);
        }
        if let Some(missing) = missing_role::<B>(&mut tx, &roles).await? {
            return Ok(AdminGuarded::UnknownRole(missing));
        }
        tx.execute(sql("DELETE FROM user_roles WHERE user_id = $1").bind(user_id))
            .await?;
        insert_user_roles(&mut tx, user_id, &roles, now).await?;
        tx.execute(
            sql("UPDATE users SET updated_at = $1 WHERE id = $2")
                .bind(now)
                .bind(user_id),
        )
        .await?;
        if let Some(event) = event(&before, &roles) {
            crate::events::insert_event(&mut tx, &event);
        }
        tx.commit().await?;
        Ok(AdminGuarded::Done(before))
    }
}
