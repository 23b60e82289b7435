//! Security events: the user-visible, append-only record of what happened to an
//! account (sign-ins, revocations, suspicious activity), each of a kind with
//! one category and severity, kept in a hash chain ([`chain`]) that shows any
//! edit, deletion or reordering under the store.

pub mod chain;
pub mod live;
pub mod verify;

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
    /// The account's roles changed and now include `admin` (`details`: before
    /// and after): a grant of every power, recorded instead of `RolesChanged`.
    AdminRoleGranted,
    /// `latchkey audit verify` found the chain broken (`details`: the place,
    /// the event and what is wrong); about no account.
    AuditChainBroken,
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
    /// An administrator added a webhook (recorded on the administrator's
    /// account; `details`: its id, the URL's origin, the event types).
    WebhookCreated,
    /// An administrator deleted a webhook (`details`: its id).
    WebhookDeleted,
    /// An administrator rotated a webhook's signing secret (`details`: its
    /// id, until when the previous secret still signs).
    WebhookSecretRotated,
    /// An administrator sent a dead letter again (`details`: the dead
    /// letter's id, its event and webhook).
    DeadLetterRetried,
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
            Self::AdminRoleGranted => "admin_role_granted",
            Self::AuditChainBroken => "audit_chain_broken",
            Self::RoleCreated => "role_created",
            Self::RoleDeleted => "role_deleted",
            Self::SessionsRevokedByAdmin => "sessions_revoked_by_admin",
            Self::SigningKeyRotated => "signing_key_rotated",
            Self::AccountDeleted => "account_deleted",
            Self::AccountCreated => "account_created",
            Self::AccountChanged => "account_changed",
            Self::WebhookCreated => "webhook_created",
            Self::WebhookDeleted => "webhook_deleted",
            Self::WebhookSecretRotated => "webhook_secret_rotated",
            Self::DeadLetterRetried => "dead_letter_retried",
        }
    }

    /// The kind stored as `text`, if known.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Every kind, in the order `docs/events.md` lists them.
    pub const ALL: [Self; 35] = [
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
        Self::AdminRoleGranted,
        Self::RoleCreated,
        Self::RoleDeleted,
        Self::SessionsRevokedByAdmin,
        Self::SigningKeyRotated,
        Self::AccountDeleted,
        Self::AccountCreated,
        Self::AccountChanged,
        Self::WebhookCreated,
        Self::WebhookDeleted,
        Self::WebhookSecretRotated,
        Self::DeadLetterRetried,
        Self::AuditChainBroken,
    ];

    /// The one table of kinds → (category, severity), listed in
    /// `docs/events.md`. `critical` is to act on now: an attack detected
    /// (refresh-token reuse, a cloned passkey, a broken audit chain) or every
    /// power granted (the `admin` role).
    pub fn class(self) -> (Category, Severity) {
        use Category as C;
        use Severity as S;
        match self {
            Self::LoginSucceeded => (C::Authentication, S::Info),
            Self::LoginFailed | Self::MfaFailed | Self::LoginThrottled => {
                (C::Authentication, S::Notice)
            }
            Self::AccountLocked => (C::Authentication, S::Warning),
            Self::RefreshReuseDetected => (C::Session, S::Critical),
            Self::DeviceChanged => (C::Session, S::Warning),
            Self::LoggedOut | Self::SessionRevoked => (C::Session, S::Info),
            Self::PasswordChanged | Self::PasswordReset | Self::EmailChangeRequested => {
                (C::Account, S::Notice)
            }
            Self::EmailChanged => (C::Account, S::Warning),
            Self::MfaEnabled | Self::RecoveryCodesRegenerated => (C::Mfa, S::Notice),
            Self::MfaDisabled | Self::RecoveryCodeUsed => (C::Mfa, S::Warning),
            Self::PasskeyCloneSuspected => (C::Mfa, S::Critical),
            Self::AdminRoleGranted => (C::Admin, S::Critical),
            Self::AuditChainBroken => (C::System, S::Critical),
            Self::AccountUnlocked
            | Self::AccountEnabled
            | Self::AccountCreated
            | Self::AccountChanged
            | Self::SessionsRevokedByAdmin
            | Self::WebhookDeleted
            | Self::DeadLetterRetried => (C::Admin, S::Notice),
            Self::AccountDisabled
            | Self::AccountDeleted
            | Self::RolesChanged
            | Self::RoleCreated
            | Self::RoleDeleted
            | Self::SigningKeyRotated
            | Self::WebhookCreated
            | Self::WebhookSecretRotated => (C::Admin, S::Warning),
        }
    }

    /// This kind's category.
    pub fn category(self) -> Category {
        self.class().0
    }

    /// This kind's severity.
    pub fn severity(self) -> Severity {
        self.class().1
    }
}

/// What area an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// Signing in.
    Authentication,
    /// Sessions and their tokens.
    Session,
    /// The account's own data (password, address).
    Account,
    /// Second factors.
    Mfa,
    /// An administrator's or operator's action.
    Admin,
    /// Personal data (export, erasure).
    Privacy,
    /// The server itself.
    System,
}

impl Category {
    /// Every category.
    pub const ALL: [Self; 7] = [
        Self::Authentication,
        Self::Session,
        Self::Account,
        Self::Mfa,
        Self::Admin,
        Self::Privacy,
        Self::System,
    ];

    /// Stable text (API and docs).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authentication => "authentication",
            Self::Session => "session",
            Self::Account => "account",
            Self::Mfa => "mfa",
            Self::Admin => "admin",
            Self::Privacy => "privacy",
            Self::System => "system",
        }
    }

    /// The category named `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }
}

/// How much an event matters, in increasing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Routine.
    Info,
    /// Worth a look in an audit.
    Notice,
    /// Possibly an attack, or a change that weakens the account.
    Warning,
    /// An attack detected, to act on now.
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Self; 4] = [Self::Info, Self::Notice, Self::Warning, Self::Critical];

    /// Stable text (API, docs and configuration).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Notice => "notice",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }

    /// The severity named `text`, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    /// UUIDv7.
    pub id: Uuid,
    /// The account concerned (`None` once the account's events are redacted,
    /// see [`chain`]).
    pub user_id: Option<Uuid>,
    /// What happened.
    pub kind: EventKind,
    /// When.
    pub created_at: OffsetDateTime,
    /// Session concerned, if any.
    pub session_id: Option<Uuid>,
    /// Client IP, if known.
    pub ip: Option<String>,
    /// The client's User-Agent (bounded), if known.
    pub user_agent: Option<String>,
    /// The administrator who made the change; `None` when the user (or the
    /// operator CLI) did.
    pub actor_id: Option<Uuid>,
    /// What changed, as a JSON object (names and ids, never a secret).
    pub details: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_stable_name() {
        let names: std::collections::HashSet<&str> =
            EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names.len(),
            EventKind::ALL.len(),
            "no two kinds share a name"
        );
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::parse("login_succeeded "), None);
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()), Some(c));
        }
        for s in Severity::ALL {
            assert_eq!(Severity::parse(s.as_str()), Some(s));
        }
        assert!(Severity::Info < Severity::Notice && Severity::Warning < Severity::Critical);
    }

    #[test]
    fn docs_list_every_kind_with_its_category_and_severity() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/events.md"))
                .unwrap();
        for kind in EventKind::ALL {
            let (category, severity) = kind.class();
            let row = format!(
                "| `{}` | {} | {} |",
                kind.as_str(),
                category.as_str(),
                severity.as_str()
            );
            assert!(doc.contains(&row), "docs/events.md lacks {row}");
        }
        let listed = doc
            .lines()
            .filter(|l| l.starts_with("| `") && l.matches(" | ").count() == 4)
            .count();
        assert_eq!(
            listed,
            EventKind::ALL.len(),
            "no type listed that does not exist"
        );
    }

    #[test]
    fn attacks_detected_are_critical() {
        for kind in [
            EventKind::RefreshReuseDetected,
            EventKind::PasskeyCloneSuspected,
        ] {
            assert_eq!(kind.severity(), Severity::Critical, "{kind:?}");
        }
        assert_eq!(
            EventKind::LoginSucceeded.category(),
            Category::Authentication
        );
    }
}
