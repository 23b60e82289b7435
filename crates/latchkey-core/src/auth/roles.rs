//! Roles: listing, creating and deleting them, and setting who holds them
//! (methods of [`Admin`]).

use uuid::Uuid;

use crate::access::{
    check_role_name, Permission, Permissions, Role, ADMIN_ROLE, MAX_ROLES, MAX_ROLE_DESCRIPTION,
};
use crate::audit::EventKind;
use crate::ports::RoleChange;

use super::admin::{guarded, AdminUser, Caller};
use super::{Admin, AuthError, ClientContext};

/// Why a role, or a set of roles, was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleProblem {
    /// The name does not match `^[a-z][a-z0-9_-]{0,63}$`.
    BadName,
    /// A permission that does not exist (its name).
    UnknownPermission(String),
    /// The description is over [`MAX_ROLE_DESCRIPTION`] characters or holds
    /// control characters.
    BadDescription,
    /// [`MAX_ROLES`] roles exist already.
    TooManyRoles,
    /// More than [`crate::access::MAX_ROLES_PER_USER`] roles for one account.
    TooManyForUser,
}

impl Admin {
    /// Every role, by name (`roles:write`).
    pub async fn roles(&self, caller: Caller<'_>) -> Result<Vec<Role>, AuthError> {
        self.authorize(caller, Permission::RolesWrite).await?;
        Ok(self.store.roles().await?)
    }

    /// Creates a role (`roles:write`). `Conflict` when the name is taken;
    /// `RoleRefused` for a bad name, description or permission.
    pub async fn create_role(
        &self,
        caller: Caller<'_>,
        name: &str,
        description: &str,
        permissions: &[String],
        client: &ClientContext,
    ) -> Result<Role, AuthError> {
        let actor = self.authorize(caller, Permission::RolesWrite).await?;
        if !check_role_name(name) {
            return Err(AuthError::RoleRefused(RoleProblem::BadName));
        }
        let description = description.trim();
        if description.chars().count() > MAX_ROLE_DESCRIPTION
            || description.chars().any(char::is_control)
        {
            return Err(AuthError::RoleRefused(RoleProblem::BadDescription));
        }
        let permissions = Permissions::parse(permissions.iter().map(String::as_str))
            .map_err(|bad| AuthError::RoleRefused(RoleProblem::UnknownPermission(bad.into())))?;
        if self.store.roles().await?.len() >= MAX_ROLES {
            return Err(AuthError::RoleRefused(RoleProblem::TooManyRoles));
        }
        let role = Role {
            name: name.to_owned(),
            description: description.to_owned(),
            permissions,
            builtin: false,
            created_at: self.common.now(),
        };
        let details = serde_json::json!({
            "role": role.name,
            "permissions": permissions.iter().map(Permission::as_str).collect::<Vec<_>>(),
        });
        let event =
            actor.map(|a| self.admin_event(a, EventKind::RoleCreated, Some(a), client, &details));
        if !self.store.create_role(&role, event.as_ref()).await? {
            return Err(AuthError::Conflict);
        }
        Ok(role)
    }

    /// Deletes a role and takes it from its holders (`roles:write`).
    /// `BuiltinRole` for `admin`; `NotFound` when there is no such role.
    pub async fn delete_role(
        &self,
        caller: Caller<'_>,
        name: &str,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        let actor = self.authorize(caller, Permission::RolesWrite).await?;
        if name == ADMIN_ROLE {
            return Err(AuthError::BuiltinRole);
        }
        let event = actor.map(|a| {
            self.admin_event(
                a,
                EventKind::RoleDeleted,
                Some(a),
                client,
                &serde_json::json!({ "role": name }),
            )
        });
        let holders = self
            .store
            .delete_role(name, event.as_ref())
            .await?
            .ok_or(AuthError::NotFound)?;
        for id in holders {
            self.common.cache.forget_profile(id);
            self.common.cache.forget_access(id);
        }
        Ok(())
    }

    /// Replaces the account's roles (`roles:assign`): tokens issued from now
    /// on carry them, and the admin API applies them at once. `UnknownRole`
    /// for a role that does not exist; `LastAdmin` when it would take the
    /// `admin` role from its last enabled holder.
    pub async fn set_roles(
        &self,
        caller: Caller<'_>,
        id: Uuid,
        roles: &[String],
        client: &ClientContext,
    ) -> Result<AdminUser, AuthError> {
        // More than MAX_ROLES_PER_USER distinct roles: refused by the store
        // (`TooManyRoles`) before it looks any up.
        self.change_roles(caller, id, RoleChange::Replace(roles), client)
            .await
    }

    /// Adds one role to the account's (`roles:assign`), keeping the others,
    /// even those another administrator grants at the same moment.
    pub async fn grant(
        &self,
        caller: Caller<'_>,
        id: Uuid,
        role: &str,
        client: &ClientContext,
    ) -> Result<AdminUser, AuthError> {
        self.change_roles(caller, id, RoleChange::Grant(role), client)
            .await
    }

    /// Takes one role from the account (`roles:assign`), keeping the others.
    pub async fn revoke(
        &self,
        caller: Caller<'_>,
        id: Uuid,
        role: &str,
        client: &ClientContext,
    ) -> Result<AdminUser, AuthError> {
        self.change_roles(caller, id, RoleChange::Revoke(role), client)
            .await
    }

    /// Applies `change` in one store transaction (see [`RoleChange`]), with a
    /// `roles_changed` event when the roles differ afterwards
    /// (`admin_role_granted` when they include `admin` now and did not before).
    async fn change_roles(
        &self,
        caller: Caller<'_>,
        id: Uuid,
        change: RoleChange<'_>,
        client: &ClientContext,
    ) -> Result<AdminUser, AuthError> {
        let actor = self.authorize(caller, Permission::RolesAssign).await?;
        let names: Vec<&str> = match change {
            RoleChange::Replace(roles) => roles.iter().map(String::as_str).collect(),
            RoleChange::Grant(role) | RoleChange::Revoke(role) => vec![role],
        };
        if let Some(bad) = names.into_iter().find(|r| !check_role_name(r)) {
            return Err(AuthError::UnknownRole(bad.to_owned()));
        }
        let event = |before: &[String], after: &[String]| {
            let is_admin = |roles: &[String]| roles.iter().any(|r| r == ADMIN_ROLE);
            let kind = if is_admin(after) && !is_admin(before) {
                EventKind::AdminRoleGranted
            } else {
                EventKind::RolesChanged
            };
            (before != after).then(|| {
                self.admin_event(
                    id,
                    kind,
                    actor,
                    client,
                    &serde_json::json!({ "before": before, "after": after }),
                )
            })
        };
        let outcome = self
            .store
            .set_user_roles(id, change, self.common.now(), &event)
            .await;
        self.common.cache.forget_profile(id);
        self.common.cache.forget_access(id);
        guarded(outcome?)?;
        self.read_user(id).await
    }
}
