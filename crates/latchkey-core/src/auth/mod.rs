//! The sign-in side of latchkey, as services per area, each holding only the
//! ports and policy it uses and composed once in [`Services`]:
//!
//! - [`Sessions`]: issuing, refreshing, checking and ending sessions and their
//!   tokens;
//! - [`SignIn`]: the sign-in use cases (password, second factor, passkey);
//! - [`Accounts`]: sign-up, address verification and change, the profile;
//! - [`Passwords`]: new-password rules, password change and reset;
//! - [`Mfa`]: TOTP and recovery codes;
//! - [`Passkeys`]: registering and managing passkeys;
//! - [`Admin`]: roles and permissions, and administering accounts.
//!
//! Shared pieces: `Common` (clock, cache, background work, events, mail) and
//! `Attempts` (the sign-in lockout). Each use case is one method over the
//! ports; the HTTP layer only parses and maps.

mod accounts;
mod admin;
mod admin_change;
mod admin_create;
mod admin_import;
mod admin_keys;
mod admin_webhooks;
mod cache;
mod common;
mod email_change;
mod events;
mod introspect;
mod lockout;
mod login;
mod mfa;
mod mfa_login;
mod new_password;
mod notices;
mod passkey_login;
mod passkeys;
mod passwords;
mod refresh;
mod reset;
mod roles;
mod security;
mod services;
mod sessions;
mod signup;
mod stream;
mod verify;

pub use accounts::Accounts;
pub use admin::{Admin, AdminUser, Caller, Page, MAX_QUERY};
pub use admin_change::ChangeAccount;
pub use admin_create::{CreateAccount, INVITE_TTL};
pub use admin_import::{ImportRecord, ImportReport, ImportStopped, IMPORT_BATCH};
pub use admin_keys::{KeyInfo, KeyState, SigningKeys};
pub use admin_webhooks::{
    WebhookProblem, WebhookSettings, WebhookWithSecret, WEBHOOK_SEAL_PURPOSE,
};
pub use cache::{AccessCache, Invalidation, DEFAULT_TTL as CACHE_TTL};
pub use email_change::{EmailChangeRequest, EMAIL_CHANGE_TOKEN_PREFIX, EMAIL_CHANGE_TTL};
pub use events::AuditQuery;
pub use introspect::Introspection;
pub use lockout::LockoutPolicy;
pub use login::{LoginOutcome, LoginRequest, MfaPending, SignIn};
pub use mfa::{Mfa, TotpEnrolment};
pub use mfa_login::{MfaLoginRequest, MfaMethod};
pub use new_password::WeakPassword;
pub use passkey_login::PasskeyLoginRequest;
pub use passkeys::{Passkeys, RegisteredPasskey, MAX_PASSKEYS};
pub use passwords::Passwords;
pub use refresh::{AccessOnly, Refreshed};
pub use reset::{RESET_TOKEN_PREFIX, RESET_TTL};
pub use roles::RoleProblem;
pub use security::{SecuritySummary, RECENT_EVENTS};
pub use services::Services;
pub use sessions::Sessions;
pub use signup::{
    MailLinks, SignupOutcome, SignupRequest, VERIFICATION_TOKEN_PREFIX, VERIFICATION_TTL,
};
pub use stream::{EventStream, STREAMS_RETRY_AFTER, STREAM_BATCH};
pub use verify::Principal;

use std::sync::Arc;

use time::Duration;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::account::User;
use crate::audit::{EventKind, SecurityEvent};
use crate::clock::Clock;
use crate::password::{PasswordError, PasswordHasher, PasswordPolicy};
use crate::ports::{Store, StoreError};
use crate::session::Device;
use crate::token::{ActiveKeys, TokenError, TokenSettings};

/// Session lifetimes and limits.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// Hard lifetime without `remember_me`.
    pub absolute_timeout: Duration,
    /// Hard lifetime with `remember_me`.
    pub remember_me_timeout: Duration,
    /// Live sessions per user; the oldest is revoked beyond this.
    pub max_per_user: u32,
    /// Refuse (and revoke) a refresh from another device fingerprint.
    pub bind_device: bool,
    /// A rotated refresh token presented again within this is refused without
    /// revoking the family (for clients racing their own refreshes).
    pub reuse_grace: Duration,
    /// The same for a browser's refresh cookie, where the presented-again
    /// token gets a fresh access token for its session (two tabs refreshing
    /// at once must not sign the user out).
    pub cookie_reuse_grace: Duration,
    /// Refuse login until the address is verified.
    pub require_email_verification: bool,
    /// Second factors can be added, and passkeys removed, only this long after
    /// the session's sign-in (`None`: any time; removing TOTP asks for the
    /// password instead). A stolen refresh token keeps a session going, but not
    /// its sign-in time: it cannot be used to plant an attacker's factor or
    /// remove the owner's passkeys.
    pub privileged_max_age: Option<Duration>,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::days(7),
            absolute_timeout: Duration::days(7),
            remember_me_timeout: Duration::days(30),
            max_per_user: 5,
            bind_device: false,
            reuse_grace: Duration::ZERO,
            cookie_reuse_grace: Duration::seconds(10),
            require_email_verification: true,
            privileged_max_age: Some(Duration::minutes(15)),
        }
    }
}

/// The caller, as the server sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientContext {
    /// Client IP.
    pub ip: Option<String>,
    /// The network the client is counted as for per-client caps (its IPv4
    /// address, or its IPv6 /64 by default), as the server decided it.
    pub network: Option<String>,
    /// Bounded User-Agent.
    pub user_agent: Option<String>,
    /// Parsed device.
    pub device: Device,
    /// Device fingerprint.
    pub fingerprint: String,
}

/// Tokens issued by a login or refresh.
pub struct Issued {
    /// The signed access token (JWT).
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The new refresh token: shown to the client once, stored only hashed.
    pub refresh_token: Zeroizing<String>,
    /// Seconds until the session (and so the refresh token) ends.
    pub refresh_expires_in: i64,
    /// The session.
    pub session_id: Uuid,
    /// The signed-in user.
    pub user: User,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

/// Why a sign-in operation failed. Each maps to one API error code.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong email or password (identical for unknown emails).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Correct password, unverified address, verification required.
    #[error("email not verified")]
    EmailNotVerified,
    /// Correct password, account disabled.
    #[error("account disabled")]
    Disabled,
    /// The session signed in too long ago for this change (second factors):
    /// the user must sign in again.
    #[error("sign in again")]
    SignInAgain,
    /// Refresh token unknown, used, revoked or expired.
    #[error("invalid token")]
    InvalidToken,
    /// Wrong, reused or malformed TOTP or recovery code.
    #[error("invalid mfa code")]
    InvalidMfaCode,
    /// The factor is already enabled, or there is no pending enrolment to
    /// confirm.
    #[error("mfa state conflict")]
    MfaConflict,
    /// The factor does not exist.
    #[error("not found")]
    NotFound,
    /// The authenticator's registration answer was refused (wrong origin,
    /// challenge, format, or a credential registered already).
    #[error("passkey rejected")]
    PasskeyRejected,
    /// Passkeys are not configured (`public_url` without a domain name).
    #[error("passkeys unavailable")]
    PasskeysUnavailable,
    /// Access token missing, malformed, expired, revoked or wrongly signed.
    #[error("unauthorized")]
    Unauthorized,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed (a bug or a corrupt stored hash).
    #[error("password hashing failed")]
    Password(#[source] PasswordError),
    /// Signing failed (a bug or a bad key).
    #[error("token signing failed")]
    Token(#[source] TokenError),
    /// Too many failed sign-ins for this identifier: locked for `retry_after`
    /// seconds.
    #[error("sign-in locked")]
    Locked {
        /// Seconds until the lock ends.
        retry_after: u64,
    },
    /// The user (or this node) has as many live event streams open as
    /// allowed (`events.stream_max_per_user`, `events.stream_max_per_node`).
    #[error("too many open event streams")]
    TooManyStreams,
    /// As many attempts for this identifier are being checked right now as the
    /// lockout threshold allows: this one is refused unchecked (retry in
    /// `retry_after` seconds), never locking anything by itself.
    #[error("too many attempts in flight")]
    AttemptsInFlight {
        /// Seconds to wait before retrying.
        retry_after: u64,
    },
    /// A cookie-mode sign-in's second step from an origin that may not make
    /// cookie-authenticated requests.
    #[error("origin not allowed for a cookie-mode sign-in")]
    ForeignOrigin,
    /// A mail template failed to render (a bug in a built-in template).
    #[error("mail template failed")]
    Template(#[source] crate::mail::templates::TemplateError),
    /// The new address is the account's current one, as typed.
    #[error("unchanged")]
    Unchanged,
    /// The address is taken by another account (reported only where
    /// enumeration protection is off, or when a confirmed change lost a race).
    #[error("conflict")]
    Conflict,
    /// The breached-password check could not answer and the policy is to fail
    /// closed.
    #[error("breached-password check unavailable")]
    BreachCheckUnavailable,
    /// The caller's current roles do not grant the permission, or their
    /// account is disabled.
    #[error("forbidden")]
    Forbidden,
    /// The change would leave no enabled holder of the `admin` role.
    #[error("the last administrator must stay")]
    LastAdmin,
    /// A built-in role cannot be deleted.
    #[error("built-in role")]
    BuiltinRole,
    /// A role that does not exist (its name).
    #[error("unknown role")]
    UnknownRole(String),
    /// A role (or a set of roles) that may not be created or held.
    #[error("role refused")]
    RoleRefused(RoleProblem),
    /// A webhook that may not be saved (the field at fault).
    #[error("webhook refused")]
    WebhookRefused(WebhookProblem),
    /// A listing's query parameter (named) is malformed: a `limit` out of
    /// range, a cursor this server did not make for this query, a bad search.
    #[error("bad query parameter")]
    BadQuery(&'static str),
    /// An imported password hash is neither an Argon2 PHC string nor a
    /// bcrypt hash of an accepted cost (nothing was imported).
    #[error("a password hash is not importable (Argon2, or bcrypt of cost 16 or less)")]
    UnimportableHash,
}

/// What the services are built from (see [`Services::new`]): the store, the
/// clock, the keys and every policy, each handed on only to the services that
/// use it.
#[derive(Clone)]
pub struct Dependencies {
    /// Persistence (each service keeps only its view of it).
    pub store: Arc<dyn Store>,
    /// Password hashing on the bounded pool.
    pub hasher: PasswordHasher,
    /// Signing keys (swapped in place on rotation).
    pub keys: Arc<ActiveKeys>,
    /// Issuer, audience, lifetimes.
    pub tokens: TokenSettings,
    /// Session policy.
    pub policy: SessionPolicy,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Links and names used in mail.
    pub links: MailLinks,
    /// Remembered access checks.
    pub cache: AccessCache,
    /// Rules for new passwords.
    pub password_policy: PasswordPolicy,
    /// The breached-password check (`None`: off) and whether a check that
    /// cannot answer lets the password through.
    pub breach: Option<BreachCheck>,
    /// Brute-force lockout on login.
    pub lockout: LockoutPolicy,
    /// Second factors: the keyring sealing TOTP seeds, the recovery-code
    /// hasher and the issuer name shown in authenticator apps.
    pub mfa: MfaServices,
    /// Work left for after an answer, bounded (see [`crate::background`]).
    pub background: crate::background::Background,
    /// Makes and checks listing cursors (keyed by a server secret).
    pub cursors: crate::page::Cursors,
    /// This node's live event listeners (told by the store of each commit).
    pub live: crate::audit::live::LiveEvents,
    /// How webhooks are checked and their secrets sealed.
    pub webhooks: WebhookSettings,
}

/// What the second-factor use cases need besides the store.
#[derive(Clone, Debug)]
pub struct MfaServices {
    /// Seals TOTP seeds (purpose [`crate::mfa::TOTP_SEAL_PURPOSE`]).
    pub seal: Arc<crate::seal::Keyring>,
    /// Keyed hashing of recovery codes.
    pub recovery: crate::mfa::recovery::RecoveryHasher,
    /// Issuer in `otpauth://` URIs (the product name).
    pub issuer: String,
    /// The WebAuthn relying party; `None` when `public_url` has no domain name.
    pub passkeys: Option<crate::mfa::passkey::PasskeyService>,
}

/// A breached-password checker and its failure policy.
#[derive(Clone, Debug)]
pub struct BreachCheck {
    /// The corpus (offline file or range API).
    pub checker: Arc<dyn crate::password::BreachChecker>,
    /// `true`: an unanswered check accepts the password (logged and counted);
    /// `false`: the request fails with `503`.
    pub fail_open: bool,
}

/// How a sign-in's session is kept, as the client asked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SessionTerms {
    /// The long absolute lifetime.
    pub remember_me: bool,
    /// How its tokens are handed over.
    pub delivery: Delivery,
}

/// How a sign-in hands its tokens to the client (`mode` at login). Only a
/// cookie-mode session gets what the cookie path grants (the tab grace of a
/// refresh, a CSRF token from `GET /v1/csrf`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Delivery {
    /// Tokens in the body (native apps, servers).
    #[default]
    Token,
    /// A browser: tokens in HttpOnly cookies, the CSRF token readable.
    Cookie,
}

impl Delivery {
    /// `token` or `cookie` (also the stored form).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Cookie => "cookie",
        }
    }

    /// The mode [`Delivery::as_str`] names; anything else is token mode (the
    /// mode that grants nothing extra).
    pub fn parse(text: &str) -> Self {
        if text == Self::Cookie.as_str() {
            Self::Cookie
        } else {
            Self::Token
        }
    }
}

/// A security event about `user_id` at `at`, from `client`'s address.
pub(crate) fn new_event(
    user_id: Uuid,
    kind: EventKind,
    session_id: Option<Uuid>,
    client: &ClientContext,
    at: time::OffsetDateTime,
) -> SecurityEvent {
    SecurityEvent {
        user_id: Some(user_id),
        session_id,
        ..client_event(kind, client, at)
    }
}

/// A security event at `at` from `client`'s address about no account (a
/// sign-in for an address that has none).
pub(crate) fn client_event(
    kind: EventKind,
    client: &ClientContext,
    at: time::OffsetDateTime,
) -> SecurityEvent {
    SecurityEvent {
        id: Uuid::now_v7(),
        user_id: None,
        kind,
        created_at: at,
        session_id: None,
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
        actor_id: None,
        details: None,
    }
}
