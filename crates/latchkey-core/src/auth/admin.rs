//! The admin service: who may administer (`authorize`), and the account
//! use cases of the admin API and the operator CLI. Roles are in `roles.rs`.

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::access::Permission;
use crate::account::{normalize_email, User};
use crate::audit::{EventKind, SecurityEvent};
use crate::page::{self, Cursors};
use crate::ports::{AdminGuarded, AdminPorts, AdminUserRow, UserSearch};
use crate::session::RevokeReason;

use super::common::Common;
use super::{AuthError, ClientContext, LockoutPolicy, Principal};

/// Longest `query` of a user search, in bytes.
pub const MAX_QUERY: usize = 320;

/// Who asks for an admin action.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// A signed-in user: allowed only what their **current** roles grant
    /// (read from the store, never from the token's `roles` claim).
    User(&'a Principal),
    /// The operator CLI: whoever can run it holds the database and the
    /// secrets already, so it is allowed everything, and its actions carry
    /// no `actor_id`.
    Operator,
}

/// An account as an administrator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminUser {
    /// The account (with its roles).
    pub user: User,
    /// Live sessions when read.
    pub session_count: u32,
    /// Sign-in locked until then (after repeated failures), if a lock is in force.
    pub locked_until: Option<OffsetDateTime>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in listing order.
    pub items: Vec<T>,
    /// The cursor of the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The page of `rows`, read with one more than `limit` (whether a next
    /// page exists, without a count): at most `limit` items, and the cursor
    /// `cursor_after` makes from the last of them when more rows were read.
    pub(crate) fn from_overfetch(
        mut rows: Vec<T>,
        limit: u32,
        cursor_after: impl FnOnce(&T) -> String,
    ) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_cursor = more.then(|| rows.last().map(cursor_after)).flatten();
        Self {
            items: rows,
            next_cursor,
        }
    }
}

/// The position a client's `cursor` names in `listing` searched by `key`
/// (`None` without a cursor); `BadQuery("cursor")` for one this server did
/// not make for that listing and key (see [`Cursors::read`]).
pub(crate) fn cursor_position(
    cursors: &Cursors,
    listing: &str,
    key: &str,
    cursor: Option<&str>,
) -> Result<Option<Uuid>, AuthError> {
    cursor
        .map(|c| {
            cursors
                .read(listing, key, c)
                .ok_or(AuthError::BadQuery("cursor"))
        })
        .transpose()
}

/// Which listing a cursor belongs to.
const USERS_LISTING: &str = "admin-users";

/// Administration. Guarantees: every use case first checks the caller's
/// current permissions (a revoked role or a disabled account takes effect at
/// once on this node, and on the others as soon as the cache bus delivers,
/// within the cache TTL at worst); every change is one store transaction
/// with its security event (naming the administrator in `actor_id`, and what
/// changed in `details`, never a secret); no change can leave the server
/// without an enabled holder of the `admin` role.
#[derive(Clone)]
pub struct Admin {
    pub(crate) store: Arc<dyn AdminPorts>,
    pub(crate) lockout: LockoutPolicy,
    /// New-password rules and hashing (accounts created with a password).
    pub(crate) passwords: super::Passwords,
    pub(crate) cursors: Cursors,
    pub(crate) webhooks: super::WebhookSettings,
    pub(crate) common: Common,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

impl Admin {
    /// `Ok(actor)` when `caller` holds `permission` now (`actor` is the
    /// administrator's id, `None` for the operator); `Forbidden` otherwise,
    /// also for a disabled account; `Unauthorized` when the account is gone.
    pub(crate) async fn authorize(
        &self,
        caller: Caller<'_>,
        permission: Permission,
    ) -> Result<Option<Uuid>, AuthError> {
        let principal = match caller {
            Caller::Operator => return Ok(None),
            Caller::User(principal) => principal,
        };
        let user_id = principal.user_id;
        let access = if let Some(access) = self.common.cache.access(user_id) {
            access
        } else {
            let ticket = self.common.cache.access_ticket(user_id);
            let access = self
                .store
                .access(user_id)
                .await?
                .ok_or(AuthError::Unauthorized)?;
            self.common.cache.remember_access(user_id, access, ticket);
            access
        };
        if access.disabled || !access.permissions.contains(permission) {
            metrics::counter!("latchkey_admin_refused_total", "permission" => permission.as_str())
                .increment(1);
            return Err(AuthError::Forbidden);
        }
        Ok(Some(user_id))
    }

    /// A security event about `user_id` made by `actor`, with `details`.
    pub(crate) fn admin_event(
        &self,
        user_id: Uuid,
        kind: EventKind,
        actor: Option<Uuid>,
        client: &ClientContext,
        details: &serde_json::Value,
    ) -> SecurityEvent {
        SecurityEvent {
            actor_id: actor,
            details: Some(details.to_string()),
            ..super::new_event(user_id, kind, None, client, self.common.now())
        }
    }

    /// Drops what this node (and, over the bus, every node) remembers of the
    /// account: sessions, profile, permissions.
    pub(crate) fn forget_account(&self, user_id: Uuid) {
        self.common.cache.forget_user(user_id);
        self.common.cache.forget_profile(user_id);
        self.common.cache.forget_access(user_id);
    }

    /// A page of accounts (`users:read`). `query`: empty for all, a user id,
    /// an email (exact, by its normalized form), or a display-name prefix.
    /// `limit` 1..=200 (default 50); a `cursor` is only valid with the query
    /// it was made for. Bad `limit`, `cursor` or `query` → `BadQuery`.
    pub async fn users(
        &self,
        caller: Caller<'_>,
        query: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<AdminUser>, AuthError> {
        self.authorize(caller, Permission::UsersRead).await?;
        let limit = page::limit(limit).ok_or(AuthError::BadQuery("limit"))?;
        let query = query.unwrap_or("").trim();
        if query.len() > MAX_QUERY || query.chars().any(char::is_control) {
            return Err(AuthError::BadQuery("query"));
        }
        let search = if query.is_empty() {
            UserSearch::All
        } else if let Ok(id) = Uuid::try_parse(query) {
            UserSearch::Id(id)
        } else if query.contains('@') {
            UserSearch::Email(normalize_email(query))
        } else {
            UserSearch::NamePrefix(query.to_owned())
        };
        let after = cursor_position(&self.cursors, USERS_LISTING, query, cursor)?;
        let now = self.common.now();
        let rows = self
            .store
            .search_users(&search, after, limit + 1, now)
            .await?;
        let rows = Page::from_overfetch(rows, limit, |r| {
            self.cursors.make(USERS_LISTING, query, r.user.id)
        });
        let locks = self.locks_of(&rows.items, now).await?;
        let items = rows
            .items
            .into_iter()
            .zip(locks)
            .map(|(row, locked_until)| AdminUser {
                user: row.user,
                session_count: row.session_count,
                locked_until,
            })
            .collect();
        Ok(Page {
            items,
            next_cursor: rows.next_cursor,
        })
    }

    /// One account (`users:read`); `NotFound` when there is none.
    pub async fn user(&self, caller: Caller<'_>, id: Uuid) -> Result<AdminUser, AuthError> {
        self.authorize(caller, Permission::UsersRead).await?;
        self.read_user(id).await
    }

    /// The account as the admin API shows it, read now.
    pub(crate) async fn read_user(&self, id: Uuid) -> Result<AdminUser, AuthError> {
        let now = self.common.now();
        let row = self
            .store
            .search_users(&UserSearch::Id(id), None, 1, now)
            .await?
            .pop()
            .ok_or(AuthError::NotFound)?;
        let locked_until = self
            .locks_of(std::slice::from_ref(&row), now)
            .await?
            .pop()
            .flatten();
        Ok(AdminUser {
            user: row.user,
            session_count: row.session_count,
            locked_until,
        })
    }

    /// The account with this email (normalized), for the CLI.
    pub async fn user_by_email(
        &self,
        caller: Caller<'_>,
        email: &str,
    ) -> Result<AdminUser, AuthError> {
        self.authorize(caller, Permission::UsersRead).await?;
        let user = self
            .store
            .user_by_email(&normalize_email(email))
            .await?
            .ok_or(AuthError::NotFound)?;
        self.read_user(user.id).await
    }

    /// The sign-in lock in force at `now` on each row's address, in row
    /// order, read in one query (none when lockout is off).
    async fn locks_of(
        &self,
        rows: &[AdminUserRow],
        now: OffsetDateTime,
    ) -> Result<Vec<Option<OffsetDateTime>>, AuthError> {
        if self.lockout.threshold == 0 {
            return Ok(vec![None; rows.len()]);
        }
        let keys: Vec<[u8; 32]> = rows
            .iter()
            .map(|r| self.lockout.identifier_key(&r.user.email))
            .collect();
        let found = self.store.throttles(&keys).await?;
        Ok(keys
            .iter()
            .map(|key| {
                found
                    .iter()
                    .find(|(k, _)| k == key)
                    .and_then(|(_, t)| t.locked_until)
                    .filter(|until| *until > now)
            })
            .collect())
    }

    /// Disables the account (`users:write`): every session revoked at once,
    /// the security stamp moved (a sign-in in flight starts no session), the
    /// caches dropped on every node; sign-in then answers `Disabled` after a
    /// correct password. `LastAdmin` when it is the last enabled admin.
    pub async fn disable(
        &self,
        caller: Caller<'_>,
        id: Uuid,
        client: &ClientContext,
    ) -> Result<AdminUser, AuthError> {
        let actor = self.authorize(caller, Permission::UsersWrite).await?;
        let event = self.admin_event(
            id,
            EventKind::AccountDisabled,
            actor,
            client,
            &serde_json::json!({}),
        );
        let outcome = self.store.disable_user(id, self.common.now(), &event).await;
        self.forget_account(id);
        guarded(outcome?)?;
        self.read_user(id).await
    }

    /// Enables a disabled account (`users:write`).
    pub async fn enable(
        &self,
        caller: Caller<'_>,
        id: Uuid,
        client: &ClientContext,
    ) -> Result<AdminUser, AuthError> {
        let actor = self.authorize(caller, Permission::UsersWrite).await?;
        let event = self.admin_event(
            id,
            EventKind::AccountEnabled,
            actor,
            client,
            &serde_json::json!({}),
        );
        if !self
            .store
            .enable_user(id, self.common.now(), &event)
            .await?
        {
            return Err(AuthError::NotFound);
        }
        self.forget_account(id);
        self.read_user(id).await
    }

    /// Clears the sign-in lockout of the account's address (`users:write`),
    /// recording `account_unlocked` when a lock or failures were recorded.
    pub async fn unlock(
        &self,
        caller: Caller<'_>,
        id: Uuid,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        let actor = self.authorize(caller, Permission::UsersWrite).await?;
        let user = self
            .store
            .user_by_id(id)
            .await?
            .ok_or(AuthError::NotFound)?;
        self.clear_lock(&user.email, Some(id), actor, client)
            .await
            .map(|_| ())
    }

    /// Clears the sign-in lockout of `email` (`users:write`), whether or not
    /// an account has it (failures on unknown addresses are counted too);
    /// `account_unlocked` is recorded when an account has it and a lock or
    /// failures were recorded. Whether anything was cleared.
    pub async fn unlock_address(
        &self,
        caller: Caller<'_>,
        email: &str,
        client: &ClientContext,
    ) -> Result<bool, AuthError> {
        let actor = self.authorize(caller, Permission::UsersWrite).await?;
        let owner = self
            .store
            .user_by_email(&normalize_email(email))
            .await?
            .map(|u| u.id);
        self.clear_lock(email, owner, actor, client).await
    }

    /// The one way a lock is lifted: the throttle row of `email` cleared, and
    /// the event on `owner`'s account when there was something to clear.
    async fn clear_lock(
        &self,
        email: &str,
        owner: Option<Uuid>,
        actor: Option<Uuid>,
        client: &ClientContext,
    ) -> Result<bool, AuthError> {
        let cleared = self
            .store
            .clear_throttle(&self.lockout.identifier_key(email))
            .await?;
        if let (true, Some(id)) = (cleared, owner) {
            let event = self.admin_event(
                id,
                EventKind::AccountUnlocked,
                actor,
                client,
                &serde_json::json!({}),
            );
            self.common.store.record_event(&event).await?;
        }
        Ok(cleared)
    }

    /// Revokes every session of the account (`users:write`), with the
    /// security stamp and caches as at a password change.
    pub async fn logout_everywhere(
        &self,
        caller: Caller<'_>,
        id: Uuid,
        client: &ClientContext,
    ) -> Result<u64, AuthError> {
        let actor = self.authorize(caller, Permission::UsersWrite).await?;
        if self.store.user_by_id(id).await?.is_none() {
            return Err(AuthError::NotFound);
        }
        let n = self
            .store
            .revoke_user_sessions(id, None, RevokeReason::AdminLogout, self.common.now())
            .await;
        self.common.cache.forget_user(id);
        let n = n?;
        let event = self.admin_event(
            id,
            EventKind::SessionsRevokedByAdmin,
            actor,
            client,
            &serde_json::json!({ "sessions": n }),
        );
        self.common.store.record_event(&event).await?;
        Ok(n)
    }

    /// Deletes the account (`users:write`) with everything held under it;
    /// its sessions end at once on every node. Recorded as
    /// `account_deleted` on the administrator's account. `LastAdmin` for the
    /// last enabled admin; `Conflict` for the caller's own account (a user
    /// deletes their own account with `DELETE /v1/me`, under its rules).
    pub async fn delete(
        &self,
        caller: Caller<'_>,
        id: Uuid,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        let actor = self.authorize(caller, Permission::UsersWrite).await?;
        if actor == Some(id) {
            return Err(AuthError::Conflict);
        }
        let event = actor.map(|a| {
            self.admin_event(
                a,
                EventKind::AccountDeleted,
                Some(a),
                client,
                &serde_json::json!({ "user_id": id }),
            )
        });
        let outcome = self.store.delete_user(id, event.as_ref()).await;
        self.forget_account(id);
        guarded(outcome?)
    }
}

/// The answer of a guarded change, as the service reports it.
pub(crate) fn guarded<T>(outcome: AdminGuarded<T>) -> Result<T, AuthError> {
    match outcome {
        AdminGuarded::Done(value) => Ok(value),
        AdminGuarded::NoUser => Err(AuthError::NotFound),
        AdminGuarded::LastAdmin => Err(AuthError::LastAdmin),
        AdminGuarded::UnknownRole(name) => Err(AuthError::UnknownRole(name)),
        AdminGuarded::TooManyRoles => {
            Err(AuthError::RoleRefused(super::RoleProblem::TooManyForUser))
        }
    }
}
