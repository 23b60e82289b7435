//! Sessions, their refresh-token families, the access-token denylist, and
//! what a security change writes in its own transaction.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::SecurityEvent;
use crate::mail::QueuedMail;
use crate::session::NewSession;
use crate::session::RefreshToken;
use crate::session::RevokeReason;
use crate::session::RotateOutcome;
use crate::session::Session;

use super::StoreError;

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
