//! The stored user record.

use time::OffsetDateTime;
use uuid::Uuid;

/// What is needed to create an account. The store assigns nothing: ids and times come
/// from the caller so that rules (not SQL defaults) decide them.
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    /// UUIDv7, chosen by the caller.
    pub id: Uuid,
    /// The address as given, trimmed.
    pub email: String,
    /// [`super::normalize_email`] of `email`; unique across all accounts.
    pub email_normalized: String,
    /// Display name, if any.
    pub name: Option<String>,
    /// PHC-format password hash; never the password itself.
    pub password_hash: String,
    /// Creation time (also the first `updated_at`).
    pub created_at: OffsetDateTime,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("id", &self.id)
            .field("name_present", &self.name.is_some())
            .finish_non_exhaustive()
    }
}

/// A stored account. `Debug` omits the email, name and hash so that a stray log line
/// leaks no PII or secret.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// UUIDv7.
    pub id: Uuid,
    /// The address as given, trimmed.
    pub email: String,
    /// The unique, normalized address.
    pub email_normalized: String,
    /// Display name, if any.
    pub name: Option<String>,
    /// PHC-format password hash.
    pub password_hash: String,
    /// When the address was verified; `None` until then.
    pub email_verified_at: Option<OffsetDateTime>,
    /// When an administrator disabled the account; `None` while enabled.
    pub disabled_at: Option<OffsetDateTime>,
    /// Consecutive failed logins since the last success.
    pub failed_login_count: i32,
    /// Last successful login.
    pub last_login_at: Option<OffsetDateTime>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change to the record.
    pub updated_at: OffsetDateTime,
    /// When the current password was set (creation, change or reset; not a
    /// re-hash of the same password).
    pub password_changed_at: OffsetDateTime,
    /// Second factors enabled (read with the record).
    pub mfa: crate::mfa::MfaSummary,
    /// Moves on at every revocation of the user's sessions: a password change
    /// or reset, a second factor enabled or disabled, a sign-out everywhere. A
    /// session is only started for the stamp its sign-in read (see
    /// [`crate::ports::SessionStore::create_session`]), and a pending email
    /// change completes only under the stamp it was asked under.
    pub security_stamp: i64,
    /// The names of the roles the user holds, sorted (read with the record;
    /// what they grant is read separately, see [`crate::ports::RoleStore`]).
    pub roles: Vec<String>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("verified", &self.email_verified_at.is_some())
            .field("disabled", &self.disabled_at.is_some())
            .finish_non_exhaustive()
    }
}
