//! Security events: the user-visible, append-only record of what happened to an
//! account (sign-ins, revocations, suspicious activity).

use time::OffsetDateTime;
use uuid::Uuid;

/// Kinds of security event. The stored text is stable (`as_str`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Successful sign-in.
    LoginSucceeded,
    /// Wrong password for an existing account.
    LoginFailed,
    /// A rotated refresh token was presented again; the family was revoked.
    RefreshReuseDetected,
    /// A refresh came from a different device fingerprint.
    DeviceChanged,
    /// The user signed out.
    LoggedOut,
    /// The password was changed.
    PasswordChanged,
    /// Sign-in was locked after repeated failures.
    AccountLocked,
    /// An operator lifted a lock.
    AccountUnlocked,
    /// A sign-in attempt was refused because of a lock.
    LoginThrottled,
    /// A second factor was enabled.
    MfaEnabled,
    /// A second factor was removed.
    MfaDisabled,
    /// A wrong second-factor code was given at sign-in.
    MfaFailed,
    /// A recovery code was used to sign in.
    RecoveryCodeUsed,
    /// A new set of recovery codes replaced the old one.
    RecoveryCodesRegenerated,
    /// A passkey answered with a signature counter that did not grow.
    PasskeyCloneSuspected,
    /// The password was reset with a mailed link.
    PasswordReset,
    /// A new email address was asked for (not yet confirmed).
    EmailChangeRequested,
    /// The email address was changed (the new one confirmed).
    EmailChanged,
    /// The user ended one of their sessions (`session_id`), or all others
    /// (no `session_id`), from the session list.
    SessionRevoked,
    /// An administrator disabled the account (every session revoked).
    AccountDisabled,
    /// An administrator enabled the account again.
    AccountEnabled,
    /// An administrator changed the account's roles (`details`: before and after).
    RolesChanged,
    /// An administrator created a role (recorded on the administrator's account).
    RoleCreated,
    /// An administrator deleted a role (recorded on the administrator's account).
    RoleDeleted,
    /// An administrator signed the account out everywhere.
    SessionsRevokedByAdmin,
    /// An administrator made a new signing key (recorded on the
    /// administrator's account; `details`: its kid, algorithm, activation).
    SigningKeyRotated,
    /// An administrator created the account (`details`: roles, whether
    /// invited, whether the address counts as verified).
    AccountCreated,
    /// An administrator changed the account (`details`: which fields).
    AccountChanged,
    /// An administrator deleted an account (recorded on the administrator's
    /// account, which outlives it; `details`: the deleted account's id).
    AccountDeleted,
}

impl EventKind {
    /// Stable text stored in the database and shown to the user.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::RefreshReuseDetected => "refresh_reuse_detected",
            Self::DeviceChanged => "device_changed",
            Self::LoggedOut => "logged_out",
            Self::PasswordChanged => "password_changed",
            Self::AccountLocked => "account_locked",
            Self::AccountUnlocked => "account_unlocked",
            Self::LoginThrottled => "login_throttled",
            Self::MfaEnabled => "mfa_enabled",
            Self::MfaDisabled => "mfa_disabled",
            Self::MfaFailed => "mfa_failed",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Self::PasskeyCloneSuspected => "passkey_clone_suspected",
            Self::PasswordReset => "password_reset",
            Self::EmailChangeRequested => "email_change_requested",
            Self::EmailChanged => "email_changed",
            Self::SessionRevoked => "session_revoked",
            Self::AccountDisabled => "account_disabled",
            Self::AccountEnabled => "account_enabled",
            Self::RolesChanged => "roles_changed",
            Self::RoleCreated => "role_created",
            Self::RoleDeleted => "role_deleted",
            Self::SessionsRevokedByAdmin => "sessions_revoked_by_admin",
            Self::SigningKeyRotated => "signing_key_rotated",
            Self::AccountDeleted => "account_deleted",
            Self::AccountCreated => "account_created",
            Self::AccountChanged => "account_changed",
        }
    }

    /// The kind stored as `text`, if known.
    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::LoginSucceeded,
            Self::LoginFailed,
            Self::RefreshReuseDetected,
            Self::DeviceChanged,
            Self::LoggedOut,
            Self::PasswordChanged,
            Self::AccountLocked,
            Self::AccountUnlocked,
            Self::LoginThrottled,
            Self::MfaEnabled,
            Self::MfaDisabled,
            Self::MfaFailed,
            Self::RecoveryCodeUsed,
            Self::RecoveryCodesRegenerated,
            Self::PasskeyCloneSuspected,
            Self::PasswordReset,
            Self::EmailChangeRequested,
            Self::EmailChanged,
            Self::SessionRevoked,
            Self::AccountDisabled,
            Self::AccountEnabled,
            Self::RolesChanged,
            Self::RoleCreated,
            Self::RoleDeleted,
            Self::SessionsRevokedByAdmin,
            Self::SigningKeyRotated,
            Self::AccountDeleted,
            Self::AccountCreated,
            Self::AccountChanged,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    /// UUIDv7.
    pub id: Uuid,
    /// The account concerned.
    pub user_id: Uuid,
    /// What happened.
    pub kind: EventKind,
    /// When.
    pub created_at: OffsetDateTime,
    /// Session concerned, if any.
    pub session_id: Option<Uuid>,
    /// Client IP, if known.
    pub ip: Option<String>,
    /// The administrator who made the change; `None` when the user (or the
    /// operator CLI) did.
    pub actor_id: Option<Uuid>,
    /// What changed, as a JSON object (names and ids, never a secret).
    pub details: Option<String>,
}
