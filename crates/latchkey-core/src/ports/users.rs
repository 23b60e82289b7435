//! Accounts.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::account::NewUser;
use crate::account::User;

use super::Aftermath;
use super::StoreError;

/// Persistence of accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a new account. Fails with [`StoreError::Conflict`] (constraint
    /// `users_email_normalized`) when the normalized email is taken, atomically: two
    /// concurrent inserts of one address cannot both succeed.
    async fn create_user(&self, user: &NewUser) -> Result<User, StoreError>;

    /// The account with this id, if any.
    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError>;

    /// The account whose normalized email equals `email_normalized`, if any.
    async fn user_by_email(&self, email_normalized: &str) -> Result<Option<User>, StoreError>;

    /// Counts a failed login made at `now` (atomically: concurrent failures are
    /// all counted); a failure older than the last successful sign-in is not
    /// counted (bookkeeping that lands late cannot undo the reset). Returns the
    /// new consecutive-failure count (0 if the user does not exist or the
    /// failure was not counted).
    async fn record_login_failure(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<i32, StoreError>;

    /// Resets the failure count and stamps `last_login_at`.
    async fn record_login_success(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Marks the address verified (first verification wins; later calls keep it).
    async fn mark_email_verified(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Sets (or clears) the display name.
    async fn update_name(
        &self,
        user_id: Uuid,
        name: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Replaces the password hash `old` with `new`, a re-hash of the same
    /// password (bcrypt import, new Argon2 parameters): no history entry.
    /// Conditional: `false` (nothing written) when the stored hash is not `old`
    /// any more — a password change or reset that committed meanwhile must not
    /// be undone by a re-hash of the old password.
    async fn update_password_hash(
        &self,
        user_id: Uuid,
        old: &str,
        new: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Sets a new password in one transaction: the current hash moves to the
    /// history, `hash` becomes current, only the `keep` newest history entries
    /// are kept (0: none), the user's pending password-reset and email
    /// verification tokens are deleted (a link mailed before the change must
    /// not undo it), and `after` is written.
    async fn change_password_hash(
        &self,
        user_id: Uuid,
        hash: &str,
        now: OffsetDateTime,
        keep: u32,
        after: &Aftermath<'_>,
    ) -> Result<(), StoreError>;

    /// The user's previous password hashes, newest first, at most `limit`.
    async fn password_history(&self, user_id: Uuid, limit: u32) -> Result<Vec<String>, StoreError>;

    /// Up to `limit` accounts whose `email_normalized` was made by older
    /// rules, as `(id, email as stored)`.
    async fn stale_email_normalizations(
        &self,
        limit: u32,
    ) -> Result<Vec<(Uuid, String)>, StoreError>;

    /// Sets the account's `email_normalized` to `normalized` (made by the
    /// current rules) and marks it current; when another account holds that
    /// form already, only marks it current and answers `false` (two accounts
    /// the old rules told apart: the one holding the form keeps it).
    async fn renormalize_email(&self, user_id: Uuid, normalized: &str) -> Result<bool, StoreError>;
}
