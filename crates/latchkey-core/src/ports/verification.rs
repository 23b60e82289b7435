//! Mailed one-time links: email verification, password reset, email change.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::account::NewUser;
use crate::account::User;
use crate::mail::QueuedMail;

use super::Aftermath;
use super::StoreError;

/// A verification token to store (the hash only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVerification {
    /// SHA-256 of the token.
    pub token_hash: [u8; 32],
    /// The account it verifies.
    pub user_id: Uuid,
    /// Issue time.
    pub created_at: OffsetDateTime,
    /// After this the token is refused.
    pub expires_at: OffsetDateTime,
}

/// A pending email change to store: the token mailed to the new address (its
/// hash only) and the address it will set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEmailChange {
    /// The token, its account and lifetime.
    pub token: NewVerification,
    /// The new address as typed (trimmed).
    pub new_email: String,
    /// Its normalized form (the uniqueness key).
    pub new_email_normalized: String,
    /// The account's `security_stamp` when the change was asked for: the
    /// change is confirmed only while the stamp is still this (a password
    /// reset or change, a factor change or a sign-out everywhere voids it).
    pub security_stamp: i64,
    /// The session that asked: the token is stored only while it is live and
    /// the stamp above is still the account's, and dies with that session.
    pub session_id: uuid::Uuid,
}

/// A pending email change found by its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEmailChange {
    /// The account.
    pub user_id: Uuid,
    /// The address it will get.
    pub new_email: String,
}

/// Email verification, with the mail that carries each token written in the
/// same transaction (a crash cannot lose the mail of a committed change).
#[async_trait]
pub trait VerificationStore: Send + Sync {
    /// Creates the account and, when given, its verification token and mail, in
    /// one transaction. `Conflict` as for [`UserStore::create_user`].
    async fn create_user_with_verification(
        &self,
        user: &NewUser,
        verification: Option<(&NewVerification, &QueuedMail)>,
    ) -> Result<User, StoreError>;

    /// Stores a new token for an existing account and queues its mail (one
    /// transaction); earlier tokens stay valid until they expire or one is used.
    async fn issue_verification(
        &self,
        token: &NewVerification,
        mail: &QueuedMail,
    ) -> Result<(), StoreError>;

    /// Spends a token and marks its account verified, atomically: a token works
    /// once, and only before it expires. Returns the account id.
    async fn consume_verification(
        &self,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<Uuid>, StoreError>;

    /// Stores a password-reset token and queues its mail (one transaction); the
    /// user's earlier reset tokens are deleted: only the newest works.
    async fn issue_password_reset(
        &self,
        token: &NewVerification,
        mail: &QueuedMail,
    ) -> Result<(), StoreError>;

    /// The account of an unused, unexpired reset token (read only).
    async fn password_reset_user(
        &self,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<Uuid>, StoreError>;

    /// Stores an email-change token and queues `mails` (the link to the new
    /// address, the notice to the old one) in one transaction; the user's
    /// earlier change tokens are deleted: only the newest works. Stores
    /// nothing and answers `false` unless, inside that transaction, the
    /// asking session is live and the account's stamp is still
    /// `security_stamp` (a sign-out everywhere or a recovery that committed
    /// while the request was in flight wins). Revoking a session, one or all,
    /// deletes the change tokens it asked for.
    async fn issue_email_change(
        &self,
        change: &NewEmailChange,
        mails: &[QueuedMail],
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// The change an unused, unexpired token stands for, while the account's
    /// security stamp is the one it was asked under (read only).
    async fn pending_email_change(
        &self,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Option<PendingEmailChange>, StoreError>;

    /// Spends the token and gives the account its new address (verified now),
    /// deletes the account's pending reset and verification tokens (links
    /// mailed to the old address die with it), and queues `mail`, in one
    /// transaction. `Ok(None)`: the token is unknown, used, expired, or its
    /// security stamp is not the account's any more. `Err(StoreError::Conflict)` when another account took the
    /// address meanwhile (the unique constraint decides; nothing changes and the
    /// token stays unused).
    async fn complete_email_change(
        &self,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
        mail: Option<&QueuedMail>,
    ) -> Result<Option<Uuid>, StoreError>;

    /// Spends the reset token, sets the new password hash (history kept as for
    /// a change, `keep` entries), marks the address verified (the link was
    /// mailed to it: an address change deletes earlier links) and writes
    /// `after` for the token's account, atomically: a token works once, only before it expires. Returns the
    /// account id; nothing is written when the token does not work.
    async fn complete_password_reset(
        &self,
        token_hash: &[u8; 32],
        hash: &str,
        now: OffsetDateTime,
        keep: u32,
        after: &Aftermath<'_>,
    ) -> Result<Option<Uuid>, StoreError>;
}
