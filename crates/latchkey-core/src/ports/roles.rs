//! Roles and who holds them.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::access::{Permissions, Role};
use crate::audit::SecurityEvent;

use super::StoreError;

/// What an account may do right now, as the store has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// The union of what the account's roles grant.
    pub permissions: Permissions,
    /// The account is disabled: it may do nothing.
    pub disabled: bool,
}

/// How a change that could take the last administrator away ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminGuarded<T> {
    /// Done; what it reports.
    Done(T),
    /// No such account (nothing written).
    NoUser,
    /// Refused, nothing written: afterwards no enabled account would hold the
    /// `admin` role.
    LastAdmin,
    /// Refused, nothing written: this role does not exist.
    UnknownRole(String),
    /// Refused, nothing written: the account would hold more than
    /// [`crate::access::MAX_ROLES_PER_USER`] roles.
    TooManyRoles,
}

/// How an account's roles change. The store applies it to the roles held
/// when its transaction has locked the account, so two grants (or a grant
/// and a revoke) made at once both take effect: no change is lost to a
/// read-modify-write race.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange<'a> {
    /// Exactly these roles.
    Replace(&'a [String]),
    /// The roles held, plus this one.
    Grant(&'a str),
    /// The roles held, without this one.
    Revoke(&'a str),
}

impl RoleChange<'_> {
    /// The roles after the change to `before`, sorted, without duplicates.
    pub fn apply(self, before: &[String]) -> Vec<String> {
        let mut after: Vec<String> = match self {
            Self::Replace(roles) => roles.to_vec(),
            Self::Grant(role) => before
                .iter()
                .cloned()
                .chain(std::iter::once(role.to_owned()))
                .collect(),
            Self::Revoke(role) => before.iter().filter(|r| *r != role).cloned().collect(),
        };
        after.sort();
        after.dedup();
        after
    }
}

/// Roles, their holders, and the checks that keep one administrator.
///
/// Every change that can take the `admin` role from its last enabled holder
/// (setting roles, disabling, deleting an account) locks the `admin` role's
/// row first, then the user's row, and counts the other enabled holders in
/// the same transaction: two administrators removing each other at once
/// cannot both succeed.
#[async_trait]
pub trait RoleStore: Send + Sync {
    /// Every role, by name.
    async fn roles(&self) -> Result<Vec<Role>, StoreError>;

    /// Adds a role and records `event`, in one transaction; `false` (nothing
    /// written) when a role of that name exists (decided by the primary key:
    /// of two racing creations exactly one succeeds).
    async fn create_role(
        &self,
        role: &Role,
        event: Option<&SecurityEvent>,
    ) -> Result<bool, StoreError>;

    /// Deletes a role that is not built in, with every holding of it, and
    /// records `event`, in one transaction; the ids of the accounts that held
    /// it, or `None` when no such deletable role exists (nothing written).
    async fn delete_role(
        &self,
        name: &str,
        event: Option<&SecurityEvent>,
    ) -> Result<Option<Vec<Uuid>>, StoreError>;

    /// What the account may do, read now (never cached here); `None` when it
    /// does not exist.
    async fn access(&self, user_id: Uuid) -> Result<Option<Access>, StoreError>;

    /// Applies `change` to the account's roles as held inside the
    /// transaction (the account's row locked first) and records `event`
    /// (built from the roles before and after, which it is given), in one
    /// transaction. Reports the roles held before.
    async fn set_user_roles(
        &self,
        user_id: Uuid,
        change: RoleChange<'_>,
        now: OffsetDateTime,
        event: &(dyn for<'r> Fn(&'r [String], &'r [String]) -> Option<SecurityEvent> + Send + Sync),
    ) -> Result<AdminGuarded<Vec<String>>, StoreError>;
}
