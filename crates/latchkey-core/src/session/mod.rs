//! Sessions (one sign-in on one device) and their refresh-token family.

mod csrf;
mod refresh;

pub use csrf::{csrf_token, verify_csrf_token, CSRF_TOKEN_LEN};

pub use refresh::{
    hash_refresh_token, looks_like_refresh_token, new_refresh_token, RefreshToken,
    REFRESH_TOKEN_PREFIX,
};

use time::OffsetDateTime;
use uuid::Uuid;

/// Parsed device metadata of a session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Device {
    /// `desktop`, `smartphone`, `tablet`, `crawler`, `unknown`...
    pub kind: String,
    /// Operating system family.
    pub os: String,
    /// Browser or client name.
    pub browser: String,
}

/// A session to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// A fresh UUIDv7: never reused from anything seen before authentication.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Creation time (also the first `last_seen_at`).
    pub created_at: OffsetDateTime,
    /// Ends when unused this long; pushed forward by each refresh.
    pub idle_expires_at: OffsetDateTime,
    /// Hard end, whatever the activity.
    pub absolute_expires_at: OffsetDateTime,
    /// Client IP as determined by the server (socket or trusted proxy).
    pub ip: Option<String>,
    /// Raw User-Agent (bounded length).
    pub user_agent: Option<String>,
    /// Parsed User-Agent.
    pub device: Device,
    /// Hash of UA family + OS, compared at refresh.
    pub fingerprint: String,
    /// Whether the long absolute lifetime was requested.
    pub remember_me: bool,
    /// Authentication methods used (`pwd`, `otp`, ...).
    pub amr: Vec<String>,
    /// Delivered in cookie mode (a browser): only such a session's refresh
    /// cookie gets the grace for concurrent tabs, and only it is handed a CSRF
    /// token by `GET /v1/csrf`.
    pub cookie_mode: bool,
}

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Id (also the refresh-token family id).
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Creation = time of authentication.
    pub created_at: OffsetDateTime,
    /// Last refresh (or creation).
    pub last_seen_at: OffsetDateTime,
    /// See [`NewSession::idle_expires_at`].
    pub idle_expires_at: OffsetDateTime,
    /// See [`NewSession::absolute_expires_at`].
    pub absolute_expires_at: OffsetDateTime,
    /// When revoked; `None` while live.
    pub revoked_at: Option<OffsetDateTime>,
    /// Client IP at creation.
    pub ip: Option<String>,
    /// User-Agent at creation.
    pub user_agent: Option<String>,
    /// Parsed User-Agent.
    pub device: Device,
    /// See [`NewSession::fingerprint`].
    pub fingerprint: String,
    /// See [`NewSession::remember_me`].
    pub remember_me: bool,
    /// See [`NewSession::amr`].
    pub amr: Vec<String>,
    /// See [`NewSession::cookie_mode`]; `None` for a session created before
    /// latchkey recorded it (it keeps the behaviour it was created under:
    /// treated as possibly a browser's until it ends).
    pub cookie_mode: Option<bool>,
}

impl Session {
    /// Live: not revoked and neither idle- nor absolutely expired at `now`.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && now < self.idle_expires_at && now < self.absolute_expires_at
    }

    /// Whether this may be a browser's cookie-mode session: false only for
    /// sessions known to be delivered in token mode, whose tokens must never
    /// get what the cookie path grants (the tab grace, a CSRF token).
    pub fn may_be_cookie_mode(&self) -> bool {
        self.cookie_mode != Some(false)
    }
}

/// Why sessions were revoked (recorded on the row, shown in security events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    /// The user signed out.
    Logout,
    /// Too many live sessions: the oldest made room for a new one.
    SessionLimit,
    /// A rotated refresh token was presented again.
    RefreshReuse,
    /// The password changed.
    PasswordChanged,
    /// The user revoked it from the session list.
    UserRevoked,
    /// The device fingerprint changed while `sessions.bind_device` is on.
    DeviceMismatch,
    /// A second factor was enabled or disabled.
    MfaChanged,
    /// The password was reset with a mailed link.
    PasswordReset,
    /// An administrator disabled the account.
    AccountDisabled,
    /// An administrator signed the account out everywhere.
    AdminLogout,
}

impl RevokeReason {
    /// Stable text stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::SessionLimit => "session_limit",
            Self::RefreshReuse => "refresh_reuse",
            Self::PasswordChanged => "password_changed",
            Self::UserRevoked => "user_revoked",
            Self::DeviceMismatch => "device_mismatch",
            Self::MfaChanged => "mfa_changed",
            Self::PasswordReset => "password_reset",
            Self::AccountDisabled => "account_disabled",
            Self::AdminLogout => "admin_logout",
        }
    }
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The token was live and unused: it is now used, the new token is stored, and
    /// the session's idle expiry moved forward.
    Rotated(Box<Session>),
    /// The token had already been used (outside the grace period): the whole family
    /// and its session are now revoked.
    Reused {
        /// The revoked session.
        session_id: Uuid,
        /// Its owner.
        user_id: Uuid,
    },
    /// Spent within the grace period (a concurrent refresh of the same
    /// client won): nothing changed; its session, still live.
    Concurrent(Box<Session>),
    /// Unknown, expired, revoked, or its session is no longer live: nothing changed.
    Invalid,
}

/// The device fingerprint stored with a session: a SHA-256 (hex, 32 chars) of the
/// user agent's family and OS, stable across browser updates, compared at refresh.
pub fn device_fingerprint(device: &Device) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(
        format!("{}\u{1f}{}\u{1f}{}", device.kind, device.os, device.browser).as_bytes(),
    );
    crate::hex::encode(&digest[..16])
}
