//! Accounts as an administrator sees them.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::account::User;
use crate::audit::SecurityEvent;

use super::{AdminGuarded, StoreError};

/// Which accounts a listing holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSearch {
    /// Every account.
    All,
    /// The account whose normalized email is this.
    Email(String),
    /// The account with this id.
    Id(Uuid),
    /// Accounts whose display name starts with this (case-sensitive, by
    /// characters).
    NamePrefix(String),
}

/// An account with what an administrator also sees of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminUserRow {
    /// The account (with its roles).
    pub user: User,
    /// Its live sessions at the time of the read.
    pub session_count: u32,
}

/// What the admin API reads and changes of accounts beyond [`super::UserStore`].
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Up to `limit` accounts matching `search` with an id greater than
    /// `after`, in id order (UUIDv7: creation order), counting sessions live
    /// at `now`.
    async fn search_users(
        &self,
        search: &UserSearch,
        after: Option<Uuid>,
        limit: u32,
        now: OffsetDateTime,
    ) -> Result<Vec<AdminUserRow>, StoreError>;

    /// Disables the account (`disabled_at` set to `now`) in one transaction
    /// with what every revocation brings (security stamp moved, every session
    /// revoked with its tokens, pending email changes dropped) and `event`.
    /// Guarded: refused when the account is the last enabled holder of the
    /// `admin` role (see [`super::RoleStore`] for the lock order). Disabling a
    /// disabled account keeps its first `disabled_at`.
    async fn disable_user(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
        event: &SecurityEvent,
    ) -> Result<AdminGuarded<()>, StoreError>;

    /// Enables the account and records `event`, in one transaction; `false`
    /// when no such account exists.
    async fn enable_user(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
        event: &SecurityEvent,
    ) -> Result<bool, StoreError>;
}
