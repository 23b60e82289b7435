//! Accounts as an administrator sees them.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::account::{NewUser, User};
use crate::audit::SecurityEvent;
use crate::mail::QueuedMail;

use super::{AdminGuarded, NewVerification, StoreError};

/// What an administrator changes of an account; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountChange {
    /// The display name (`Some(None)` clears it).
    pub name: Option<Option<String>>,
    /// The new address, as typed and normalized.
    pub email: Option<(String, String)>,
    /// Whether the address counts as verified.
    pub email_verified: Option<bool>,
}

/// An account brought in by `users import`, with the hash it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedAccount {
    /// The account (its `password_hash` as given, checked by the caller).
    pub user: NewUser,
    /// Its address counts as verified from its creation.
    pub email_verified: bool,
    /// Its roles (each must exist).
    pub roles: Vec<String>,
    /// The creation's security event.
    pub event: SecurityEvent,
}

/// An account an administrator creates, with everything written with it in
/// one transaction.
#[derive(Debug, Clone, Copy)]
pub struct NewAccount<'a> {
    /// The account.
    pub user: &'a NewUser,
    /// Its address counts as verified from its creation.
    pub email_verified: bool,
    /// Its roles (each must exist).
    pub roles: &'a [String],
    /// For an account created without a password: the set-password link (a
    /// password-reset token) and the mail carrying it.
    pub invite: Option<(&'a NewVerification, &'a QueuedMail)>,
    /// The creation's security event.
    pub event: &'a SecurityEvent,
}

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

    /// Deletes the account and, by cascade, everything held under it
    /// (sessions and their tokens, factors, passkeys, pending mail, tokens of
    /// mailed links, its own security events), recording `event` (about
    /// another account, which outlives the deletion) in the same
    /// transaction. Guarded like [`Self::disable_user`]: the last enabled
    /// holder of the `admin` role is not deleted.
    async fn delete_user(
        &self,
        user_id: Uuid,
        event: Option<&SecurityEvent>,
    ) -> Result<AdminGuarded<()>, StoreError>;

    /// Creates the account with its roles, its invite (token and mail) and
    /// its event, in one transaction: all or nothing. `UnknownRole` when a
    /// role does not exist; a taken address is `StoreError::Conflict`
    /// (`users_email_normalized`), decided by the unique constraint.
    async fn create_account(
        &self,
        account: &NewAccount<'_>,
    ) -> Result<AdminGuarded<()>, StoreError>;

    /// Applies `change` at `now` in one transaction with `notice` (queued)
    /// and `event`; `false` when no such account exists. A new address
    /// voids every link mailed before (reset, verification, pending address
    /// change); a taken one is `StoreError::Conflict` (the unique constraint).
    async fn change_account(
        &self,
        user_id: Uuid,
        change: &AccountChange,
        now: OffsetDateTime,
        notice: Option<&QueuedMail>,
        event: &SecurityEvent,
    ) -> Result<bool, StoreError>;

    /// Creates each account whose address is not taken yet, with its roles
    /// and event, in one transaction: all of the batch or nothing. A taken
    /// address is skipped (import is idempotent on the address). Returns how
    /// many were created; `UnknownRole` when a role does not exist.
    async fn import_accounts(
        &self,
        accounts: &[ImportedAccount],
    ) -> Result<AdminGuarded<u64>, StoreError>;
}
