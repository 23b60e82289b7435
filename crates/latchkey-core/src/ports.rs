//! What the domain needs from the outside world.
//!
//! Each backend (SQLite, PostgreSQL) implements these traits in its own crate; the
//! conformance suite in `latchkey-testkit` runs the same tests against every
//! implementation so they cannot drift apart.

use async_trait::async_trait;
use uuid::Uuid;

use time::OffsetDateTime;

use crate::account::{NewUser, User};
use crate::audit::SecurityEvent;
use crate::mail::QueuedMail;
use crate::mfa::challenge::MfaChallenge;
use crate::mfa::passkey::{Ceremony, PasskeyRecord};
use crate::mfa::{MfaSummary, TotpRecord};
use crate::session::{NewSession, RefreshToken, RevokeReason, RotateOutcome, Session};

/// Why a store operation failed. Callers branch on the variant, never on text.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now (connection refused, pool closed or
    /// exhausted, timeout). Maps to `503 unavailable`, never to a 500.
    #[error("database unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A uniqueness constraint rejected the write; `constraint` names which one.
    #[error("unique constraint violated: {constraint}")]
    Conflict {
        /// Stable name of the violated constraint (e.g. `users_email_normalized`).
        constraint: &'static str,
    },
    /// Anything else: a bug or a corrupt database. The source goes to the log only.
    #[error("database error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

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

/// The `constraint` of the conflict [`PasskeyStore::insert_passkey`] reports
/// when the user holds the most passkeys allowed.
pub const PASSKEY_LIMIT: &str = "passkey_limit";

/// The `constraint` of the conflict [`SessionStore::create_session`] reports
/// when a security change (password, second factor) committed under a sign-in.
pub const SECURITY_CHANGED: &str = "security_stamp";

/// What a security-relevant change brings with it, written by the store inside
/// the change's own transaction: a crash can never leave a password change
/// committed with the old sessions alive, or a factor change without its audit
/// event or its notice in the outbox.
#[derive(Debug, Default, Clone, Copy)]
pub struct Aftermath<'a> {
    /// Revoke the user's live sessions (and their refresh tokens), move the
    /// user's `security_stamp` on so sign-ins in flight start nothing, and
    /// void the user's pending email changes (see
    /// [`SessionStore::revoke_user_sessions`]).
    pub revoke: Option<Revocation>,
    /// Append this security event (its `user_id` is the changed user's).
    pub event: Option<&'a SecurityEvent>,
    /// Queue this mail (due at once).
    pub mail: Option<&'a QueuedMail>,
    /// Replace the user's recovery codes with these hashes (empty: remove
    /// them), e.g. with the first factor or the last one's removal.
    pub recovery_codes: Option<&'a [[u8; 32]]>,
}

/// Which sessions an [`Aftermath`] revokes: every live one of the user but
/// `keep`, recorded with `reason`.
#[derive(Debug, Clone, Copy)]
pub struct Revocation {
    /// The session that stays (the one that made the change), if any.
    pub keep: Option<Uuid>,
    /// Why (stored on each revoked row).
    pub reason: RevokeReason,
}

/// Persistence of sessions, their refresh-token families and the access-token
/// denylist. Every multi-step write is one transaction; races are closed in SQL.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session with its first refresh token, revokes the user's
    /// oldest live sessions (and their tokens) beyond `max_live`, and writes
    /// `after` (the sign-in event, a new-device notice), all in one
    /// transaction. Returns the ids it revoked.
    ///
    /// `seen_stamp` is the account's `security_stamp` as the sign-in read it
    /// before checking the credentials. If it moved since (a password change
    /// or reset, or a factor change, revoked the other sessions while this
    /// sign-in was between its check and this call), nothing is written and the
    /// answer is `Conflict { constraint: SECURITY_CHANGED }`: a session begun
    /// under the old password or factors cannot outlive the change. Sign-ins
    /// of one user and such changes take turns on the user's row.
    async fn create_session(
        &self,
        session: &NewSession,
        first_token: &RefreshToken,
        max_live: u32,
        seen_stamp: i64,
        after: &Aftermath<'_>,
    ) -> Result<Vec<uuid::Uuid>, StoreError>;

    /// The session with this id, live or not.
    async fn session(&self, id: uuid::Uuid) -> Result<Option<Session>, StoreError>;

    /// The user's live sessions at `now`, newest first.
    async fn live_sessions(
        &self,
        user_id: uuid::Uuid,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError>;

    /// How familiar a device fingerprint is to a user, judged by the sessions
    /// still stored (live, revoked or expired, until cleanup removes them).
    async fn device_seen(
        &self,
        user_id: uuid::Uuid,
        fingerprint: &str,
    ) -> Result<DeviceSeen, StoreError>;

    /// Spends the token whose hash is `presented` and stores `next` in its family,
    /// atomically: of any number of concurrent calls with one token, at most one
    /// returns `Rotated`. `next.session_id` and `next.expires_at` are ignored: the
    /// family decides the session, and the new token expires with the session.
    /// A token already used more than `grace` ago revokes the family and session
    /// (`Reused`); one used within `grace` changes nothing and answers
    /// `Concurrent` with its session while the token and session are live
    /// (else `Invalid`).
    async fn rotate_refresh_token(
        &self,
        presented: &[u8; 32],
        next: &RefreshToken,
        now: OffsetDateTime,
        idle_timeout: time::Duration,
        grace: time::Duration,
    ) -> Result<RotateOutcome, StoreError>;

    /// Revokes one session of this user (and its tokens); false if it was not a
    /// live session of theirs.
    async fn revoke_session(
        &self,
        user_id: uuid::Uuid,
        session_id: uuid::Uuid,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Revokes every live session of the user except `keep`; returns how many.
    /// Like every revocation of the user's sessions (an [`Aftermath`] with
    /// `revoke`), in the same transaction it moves the user's
    /// `security_stamp` on and deletes the user's pending email changes: after
    /// a sign-out everywhere, nothing started in another session (a link to an
    /// attacker's address) can still change the account.
    async fn revoke_user_sessions(
        &self,
        user_id: uuid::Uuid,
        keep: Option<uuid::Uuid>,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// The session of a refresh token that is still usable at `now` (unrevoked,
    /// unexpired, and unused or used at most `used_within` ago), with the
    /// token's expiry; `None` otherwise. Reads only.
    async fn refresh_token_session(
        &self,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
        used_within: time::Duration,
    ) -> Result<Option<(Session, OffsetDateTime)>, StoreError>;

    /// Denylists an access token's `jti` until `expires_at` (idempotent).
    async fn deny_access_token(
        &self,
        jti: uuid::Uuid,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Whether `jti` is denylisted.
    async fn is_access_token_denied(&self, jti: uuid::Uuid) -> Result<bool, StoreError>;
}

/// The append-only security event log.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends an event.
    async fn record_event(&self, event: &SecurityEvent) -> Result<(), StoreError>;

    /// The user's events, newest first, at most `limit`.
    async fn user_events(
        &self,
        user_id: uuid::Uuid,
        limit: u32,
    ) -> Result<Vec<SecurityEvent>, StoreError>;
}

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
    /// a change, `keep` entries) and writes `after` for the token's account,
    /// atomically: a token works once, only before it expires. Returns the
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

/// What the stored sessions say about a device at sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSeen {
    /// The user has no stored session at all (a first sign-in).
    FirstSignIn,
    /// A stored session came from the same fingerprint.
    Known,
    /// Sessions exist, none from this fingerprint.
    New,
}

/// The persistent mail outbox.
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Queues a message (due at once).
    async fn enqueue_mail(&self, mail: &QueuedMail) -> Result<(), StoreError>;

    /// Claims up to `limit` due messages: their next attempt moves `lease` ahead and
    /// their attempt count up, so no other worker (on any node) takes them while
    /// this one tries. A worker that dies leaves them due again after the lease.
    async fn claim_mail(
        &self,
        now: OffsetDateTime,
        lease: time::Duration,
        limit: u32,
    ) -> Result<Vec<QueuedMail>, StoreError>;

    /// Delivered.
    async fn mark_mail_sent(&self, id: Uuid, now: OffsetDateTime) -> Result<(), StoreError>;

    /// Try again at `next_attempt_at`.
    async fn mark_mail_retry(
        &self,
        id: Uuid,
        next_attempt_at: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Give up (permanent failure).
    async fn mark_mail_failed(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Messages neither sent nor failed.
    async fn pending_mail(&self) -> Result<u64, StoreError>;
}

/// What one kind of expired data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// Sessions revoked or past their idle/absolute expiry (their refresh tokens go
    /// with them).
    Sessions,
    /// Refresh tokens past their expiry.
    RefreshTokens,
    /// Denylist entries whose access token has expired anyway.
    DeniedAccessTokens,
    /// Verification tokens used or past their expiry.
    VerificationTokens,
    /// Outbox messages sent or failed more than a week ago.
    OldMail,
    /// Sign-in MFA challenges used or past their expiry.
    MfaChallenges,
    /// WebAuthn ceremonies past their expiry.
    WebauthnCeremonies,
    /// Password-reset tokens used or past their expiry.
    PasswordResetTokens,
    /// Email-change tokens used or past their expiry.
    EmailChangeTokens,
    /// Lockout rows of identifiers with no failure and no lock in force for a
    /// day (the next failure starts a fresh count, and a fresh lock length).
    LoginThrottles,
}

impl Expired {
    /// Rows older than this (at `now`) are expired: `now` for tokens and sessions,
    /// a week ago for finished mail (kept that long for diagnosis).
    pub fn cutoff(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            Self::OldMail => now - time::Duration::days(7),
            Self::LoginThrottles => now - time::Duration::days(1),
            _ => now,
        }
    }
}

/// Removal of data nobody can use any more.
#[async_trait]
pub trait MaintenanceStore: Send + Sync {
    /// Deletes at most `batch` rows of `kind` that are expired at `now`; returns
    /// how many. Callers repeat until it returns less than `batch`.
    async fn delete_expired(
        &self,
        kind: Expired,
        now: OffsetDateTime,
        batch: u32,
    ) -> Result<u64, StoreError>;
}

/// A signing key as stored: the private key sealed with the master key
/// ([`crate::seal`]), never in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    /// RFC 7638 thumbprint (also the associated data of the ciphertext).
    pub kid: String,
    /// `EdDSA`, `ES256` or `RS256`.
    pub algorithm: String,
    /// The sealed PKCS#8 DER.
    pub sealed_key: Vec<u8>,
    /// When it was created (and published in the JWKS).
    pub created_at: OffsetDateTime,
    /// When it starts signing: of the keys active at a time, the newest
    /// created is current.
    pub activates_at: OffsetDateTime,
}

impl std::fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .finish_non_exhaustive()
    }
}

/// Signing keys kept in the database (production), shared by every node.
#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Keys of `algorithm`, oldest first (by creation time, then kid).
    async fn signing_keys(&self, algorithm: &str) -> Result<Vec<StoredSigningKey>, StoreError>;

    /// Adds a key; `Conflict` if its kid exists.
    async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<(), StoreError>;

    /// Removes a key (retired keys, once no token they signed can be valid);
    /// returns whether it existed.
    async fn delete_signing_key(&self, kid: &str) -> Result<bool, StoreError>;

    /// Replaces the sealed private key of `kid` if it is still `old` (key
    /// re-encryption); whether it was.
    async fn reseal_signing_key(
        &self,
        kid: &str,
        old: &[u8],
        sealed: &[u8],
    ) -> Result<bool, StoreError>;
}

/// Failed-login bookkeeping for one identifier (the HMAC of a normalized
/// email), whether or not an account has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Throttle {
    /// Consecutive failures since the last lock (or success).
    pub failures: u32,
    /// Locks so far (each doubles the next lock's length).
    pub lock_count: u32,
    /// Locked until then (may be in the past).
    pub locked_until: Option<OffsetDateTime>,
    /// When the attempt before the latest reservation was made (as
    /// [`ThrottleStore::reserve_throttle_attempt`] reports it; `None` for a
    /// new row or from other reads).
    pub previous_attempt_at: Option<OffsetDateTime>,
}

/// Brute-force defence state per identifier (an email's HMAC, a device
/// cookie's, a passkey's). Every method is one atomic statement: concurrent
/// attempts never lose a count nor lock twice.
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// The state of `key`, if any failure was recorded.
    async fn throttle(&self, key: &[u8; 32]) -> Result<Option<Throttle>, StoreError>;

    /// Reserves one attempt before its credential is checked: in one
    /// statement, counts it (creating the row) unless a lock is in force at
    /// `now`, and returns the new state with the time of the previous
    /// attempt. However many attempts race, each gets
    /// its own count: the caller refuses those past the threshold before any
    /// hashing. A wrong answer keeps the count; a correct one gives it back
    /// ([`Self::release_throttle_attempt`]) or clears the row.
    async fn reserve_throttle_attempt(
        &self,
        key: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Throttle, StoreError>;

    /// Gives back one reserved attempt (a correct first factor whose second
    /// step is still to come, or an attempt abandoned before its answer): the
    /// count goes down by one, never below zero. For an attempt refused
    /// unchecked, `previous_attempt_at` (what its reservation reported) is
    /// also put back as the time of the last attempt (the earlier of the two
    /// wins, whatever order racing refusals end in), so refusals never make
    /// the reserved counts look recent.
    async fn release_throttle_attempt(
        &self,
        key: &[u8; 32],
        previous_attempt_at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError>;

    /// Locks `key` until `until` if it has at least `threshold` failures
    /// (resetting them and counting the lock); `false` if another request
    /// locked it first or the count is below the threshold.
    async fn lock_throttle(
        &self,
        key: &[u8; 32],
        threshold: u32,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Forgets `key` (success or unlock); whether anything was recorded.
    async fn clear_throttle(&self, key: &[u8; 32]) -> Result<bool, StoreError>;
}

/// Second factors: TOTP enrolments, recovery codes, sign-in challenges. Every
/// use of a code is one conditional write, so two concurrent requests with the
/// same code cannot both succeed.
#[async_trait]
pub trait MfaStore: Send + Sync {
    /// The user's TOTP factor (pending or confirmed), if any.
    async fn totp(&self, user_id: Uuid) -> Result<Option<TotpRecord>, StoreError>;

    /// Stores a pending enrolment, replacing a pending one; `false` (nothing
    /// written) when a confirmed factor exists.
    async fn put_pending_totp(&self, record: &TotpRecord) -> Result<bool, StoreError>;

    /// Confirms the pending enrolment `id` at `step`, replaces the user's
    /// recovery codes with `recovery_hashes` and writes `after`, in one
    /// transaction; `false` (nothing written) when `id` is not the user's
    /// pending enrolment any more.
    async fn confirm_totp(
        &self,
        user_id: Uuid,
        id: Uuid,
        step: i64,
        recovery_hashes: &[[u8; 32]],
        now: OffsetDateTime,
        after: &Aftermath<'_>,
    ) -> Result<bool, StoreError>;

    /// Records `step` as used on the confirmed factor `id` if it is later than the
    /// last used step; `false` otherwise (a replay or a lost race).
    async fn use_totp_step(&self, id: Uuid, step: i64) -> Result<bool, StoreError>;

    /// Removes the user's TOTP factor (pending or confirmed), in one
    /// transaction that writes `after` only when the removed factor was
    /// confirmed (a pending enrolment protected nothing) and removes the
    /// recovery codes when no factor is left (they protect nothing alone);
    /// whether a factor existed. Concurrent factor removals of one user take
    /// turns, so the last one always takes the codes.
    async fn delete_totp(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
        after: &Aftermath<'_>,
    ) -> Result<bool, StoreError>;

    /// Replaces the user's recovery codes.
    async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        hashes: &[[u8; 32]],
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Marks the unused code with this hash as used and writes `after`, in one
    /// transaction; `false` (nothing written) if there is no such code.
    async fn use_recovery_code(
        &self,
        user_id: Uuid,
        hash: &[u8; 32],
        now: OffsetDateTime,
        after: &Aftermath<'_>,
    ) -> Result<bool, StoreError>;

    /// What the user has enabled.
    async fn mfa_summary(&self, user_id: Uuid) -> Result<MfaSummary, StoreError>;

    /// Distinct ids of the keys that sealed stored TOTP seeds.
    async fn totp_key_ids(&self) -> Result<Vec<String>, StoreError>;

    /// Up to `limit` TOTP records not sealed with `key_id` (for re-encryption).
    async fn totp_not_sealed_with(
        &self,
        key_id: &str,
        limit: u32,
    ) -> Result<Vec<TotpRecord>, StoreError>;

    /// Replaces the sealed seed of `id` if it is still `old`; whether it was.
    async fn reseal_totp(
        &self,
        id: Uuid,
        old: &[u8],
        sealed: &[u8],
        key_id: &str,
    ) -> Result<bool, StoreError>;

    /// Stores a new sign-in challenge.
    async fn create_mfa_challenge(&self, challenge: &MfaChallenge) -> Result<(), StoreError>;

    /// The unused challenge with this token hash, if any (expired ones too: the
    /// caller checks the time).
    async fn mfa_challenge(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<MfaChallenge>, StoreError>;

    /// Spends one attempt of the challenge before its answer is checked: in one
    /// conditional write, adds one to `attempts` only if the challenge is
    /// unused, unexpired at `now` and has fewer than `max_attempts` attempts.
    /// Whether an attempt was granted; however many callers race, at most
    /// `max_attempts` are granted per challenge.
    async fn take_mfa_attempt(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        max_attempts: i32,
    ) -> Result<bool, StoreError>;

    /// Marks the challenge used if it is unused, unexpired at `now` and has fewer
    /// than `max_attempts` wrong answers; whether this call consumed it.
    async fn consume_mfa_challenge(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        max_attempts: i32,
    ) -> Result<bool, StoreError>;
}

/// Registered passkeys and WebAuthn ceremonies.
#[async_trait]
pub trait PasskeyStore: Send + Sync {
    /// Adds a passkey and writes `after`, in one transaction; `Conflict` (nothing
    /// written) when its credential id is registered already (for any user),
    /// or — constraint [`PASSKEY_LIMIT`] — when the user holds `max_per_user`
    /// passkeys already (counted inside the transaction: concurrent
    /// registrations of one user take turns and cannot exceed it).
    async fn insert_passkey(
        &self,
        passkey: &PasskeyRecord,
        after: &Aftermath<'_>,
        max_per_user: u32,
    ) -> Result<(), StoreError>;

    /// The user's passkeys, oldest first.
    async fn passkeys(&self, user_id: Uuid) -> Result<Vec<PasskeyRecord>, StoreError>;

    /// Stores the state after a successful use (counter, flags, JSON) and the
    /// time of use.
    async fn record_passkey_use(
        &self,
        id: Uuid,
        passkey_json: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Renames the user's passkey; whether it exists.
    async fn rename_passkey(&self, user_id: Uuid, id: Uuid, name: &str)
        -> Result<bool, StoreError>;

    /// Removes the user's passkey and writes `after`, in one transaction that
    /// also removes the recovery codes when no factor is left (as
    /// [`MfaStore::delete_totp`]); whether it existed (nothing written when it
    /// did not).
    async fn delete_passkey(
        &self,
        user_id: Uuid,
        id: Uuid,
        now: OffsetDateTime,
        after: &Aftermath<'_>,
    ) -> Result<bool, StoreError>;

    /// Stores a ceremony and, in the same transaction, deletes the oldest
    /// open ceremonies of its owner beyond the `max_open` newest: a flood of
    /// starts keeps a bounded number of rows per user or client.
    async fn create_ceremony(&self, ceremony: &Ceremony, max_open: u32) -> Result<(), StoreError>;

    /// Removes and returns the ceremony (single use: of concurrent calls, one
    /// gets it). Expired ones are returned too; the caller checks the time.
    async fn take_ceremony(&self, id: Uuid) -> Result<Option<Ceremony>, StoreError>;
}

/// Everything latchkey persists, plus the operations on the store as a whole.
#[async_trait]
pub trait Store:
    UserStore
    + SessionStore
    + EventStore
    + VerificationStore
    + OutboxStore
    + MaintenanceStore
    + SigningKeyStore
    + ThrottleStore
    + MfaStore
    + PasskeyStore
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// Round-trips a trivial query; used by `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Applies pending embedded migrations. Idempotent.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Closes every pooled connection; later calls fail with `Unavailable`.
    async fn close(&self);

    /// Which engine this is (`"sqlite"` or `"postgres"`), for logs and `/readyz`.
    fn backend(&self) -> &'static str;
}

/// Connection-pool sizing shared by both database backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// Upper bound of open connections.
    pub max_connections: u32,
    /// Connections kept open while idle.
    pub min_connections: u32,
    /// How long a query waits for a free connection before failing `Unavailable`.
    pub acquire_timeout: std::time::Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: std::time::Duration::from_secs(3),
        }
    }
}
