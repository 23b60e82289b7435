//! A short-lived in-process memory of access-token checks (session liveness and
//! the `jti` denylist) and of user profiles, so a bearer request — `GET /v1/me`
//! included — usually costs no database round-trip.
//!
//! Guarantees: every revocation made through this process (logout, session
//! revocation, password change, refresh reuse, session-limit eviction) and every
//! change of a user made through it (name, password, verification, login
//! bookkeeping) drops the affected entries at once, so it takes effect
//! immediately here; a change made by another node is seen within the TTL (5 s
//! by default). Profiles are only ever served for display, never to decide a
//! password or an account state.

use std::time::Duration;

use moka::sync::Cache;
use time::OffsetDateTime;
use uuid::Uuid;

use std::sync::Arc;

use crate::account::User;
use crate::session::Session;

/// Default time an answer is remembered.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
struct CachedSession {
    user_id: Uuid,
    /// Past (or `None`-like epoch) when revoked.
    live_until: OffsetDateTime,
}

/// See the module docs.
#[derive(Clone)]
pub struct AccessCache {
    sessions: Cache<Uuid, CachedSession>,
    denied: Cache<Uuid, bool>,
    profiles: Cache<Uuid, Arc<User>>,
}

impl std::fmt::Debug for AccessCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessCache").finish_non_exhaustive()
    }
}

impl Default for AccessCache {
    fn default() -> Self {
        Self::new(DEFAULT_TTL, 100_000)
    }
}

impl AccessCache {
    /// A cache remembering answers for `ttl`, at most `capacity` of each kind.
    pub fn new(ttl: Duration, capacity: u64) -> Self {
        Self {
            sessions: Cache::builder()
                .time_to_live(ttl)
                .max_capacity(capacity)
                .support_invalidation_closures()
                .build(),
            denied: Cache::builder()
                .time_to_live(ttl)
                .max_capacity(capacity)
                .build(),
            profiles: Cache::builder()
                .time_to_live(ttl)
                .max_capacity(capacity)
                .build(),
        }
    }

    /// Whether the session is live for `user_id` at `now`, if remembered.
    pub(crate) fn session_live(
        &self,
        id: Uuid,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Option<bool> {
        self.sessions
            .get(&id)
            .map(|c| c.user_id == user_id && now < c.live_until)
    }

    /// Remembers a session's state as just read from the store.
    pub(crate) fn remember_session(&self, session: &Session) {
        let live_until = if session.revoked_at.is_some() {
            OffsetDateTime::UNIX_EPOCH
        } else {
            session.idle_expires_at.min(session.absolute_expires_at)
        };
        self.sessions.insert(
            session.id,
            CachedSession {
                user_id: session.user_id,
                live_until,
            },
        );
    }

    /// Forgets one session (it was revoked or changed here).
    pub(crate) fn forget_session(&self, id: Uuid) {
        self.sessions.invalidate(&id);
    }

    /// Forgets every session of a user.
    pub(crate) fn forget_user(&self, user_id: Uuid) {
        if self
            .sessions
            .invalidate_entries_if(move |_, c| c.user_id == user_id)
            .is_err()
        {
            self.sessions.invalidate_all();
        }
    }

    /// A user's profile, if remembered.
    pub(crate) fn profile(&self, user_id: Uuid) -> Option<Arc<User>> {
        self.profiles.get(&user_id)
    }

    /// Remembers a profile as just read from the store.
    pub(crate) fn remember_profile(&self, user: User) {
        self.profiles.insert(user.id, Arc::new(user));
    }

    /// Forgets a profile (the user was changed here).
    pub(crate) fn forget_profile(&self, user_id: Uuid) {
        self.profiles.invalidate(&user_id);
    }

    /// Whether `jti` is denylisted, if remembered.
    pub(crate) fn denied(&self, jti: Uuid) -> Option<bool> {
        self.denied.get(&jti)
    }

    /// Remembers a denylist answer.
    pub(crate) fn remember_denied(&self, jti: Uuid, denied: bool) {
        self.denied.insert(jti, denied);
    }
}
