//! A short-lived in-process memory of access-token checks (session liveness and
//! the `jti` denylist) and of user profiles, so a bearer request — `GET /v1/me`
//! included — usually costs no database round-trip.
//!
//! Guarantees: every revocation made through this process (logout, session
//! revocation, password change, refresh reuse, session-limit eviction) and every
//! change of a user made through it (name, password, verification, login
//! bookkeeping) drops the affected entries at once, so it takes effect
//! immediately here. Once [`AccessCache::share_with`] is connected (the server
//! does so over Redis pub/sub when `redis.url` is set), the same drops are sent
//! to the other nodes, which apply them as they arrive; without it, or when a
//! message is lost, a change made by another node is seen within the TTL (5 s
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

/// One dropped entry, as told to the other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// A session's state.
    Session(Uuid),
    /// Every session of a user.
    User(Uuid),
    /// A denylist answer (the `jti` was just denied).
    Denied(Uuid),
    /// A user's profile.
    Profile(Uuid),
}

impl Invalidation {
    /// The compact text form (`s:`, `u:`, `d:` or `p:` and the id).
    pub fn encode(&self) -> String {
        let (tag, id) = match self {
            Self::Session(id) => ('s', id),
            Self::User(id) => ('u', id),
            Self::Denied(id) => ('d', id),
            Self::Profile(id) => ('p', id),
        };
        format!("{tag}:{}", id.simple())
    }

    /// The invalidation `text` encodes; `None` for anything else.
    pub fn decode(text: &str) -> Option<Self> {
        let (tag, id) = text.split_once(':')?;
        let id = Uuid::try_parse(id).ok()?;
        match tag {
            "s" => Some(Self::Session(id)),
            "u" => Some(Self::User(id)),
            "d" => Some(Self::Denied(id)),
            "p" => Some(Self::Profile(id)),
            _ => None,
        }
    }
}

/// See the module docs.
#[derive(Clone)]
pub struct AccessCache {
    sessions: Cache<Uuid, CachedSession>,
    denied: Cache<Uuid, bool>,
    profiles: Cache<Uuid, Arc<User>>,
    /// Where drops are sent for the other nodes, once connected.
    peers: Arc<std::sync::OnceLock<tokio::sync::mpsc::Sender<Invalidation>>>,
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
            peers: Arc::default(),
        }
    }

    /// Sends every later drop made through this cache (and its clones) to
    /// `peers` as well. Never blocks: when the channel is full the drop is
    /// counted in `latchkey_cache_invalidations_dropped_total` and the other
    /// nodes fall back on the TTL. Only the first call has an effect.
    pub fn share_with(&self, peers: tokio::sync::mpsc::Sender<Invalidation>) {
        let _ = self.peers.set(peers);
    }

    /// Applies a drop told by another node (not sent on again). A user's
    /// sessions are dropped with all others (one cheap step, rare: password,
    /// factor or sign-out-everywhere changes), so a flood of such messages
    /// cannot pile up per-user filters that every request would then run.
    pub fn apply(&self, invalidation: Invalidation) {
        match invalidation {
            Invalidation::Session(id) => self.sessions.invalidate(&id),
            Invalidation::User(_) => self.sessions.invalidate_all(),
            Invalidation::Denied(jti) => self.denied.invalidate(&jti),
            Invalidation::Profile(user_id) => self.profiles.invalidate(&user_id),
        }
    }

    fn tell_peers(&self, invalidation: Invalidation) {
        if let Some(peers) = self.peers.get() {
            if peers.try_send(invalidation).is_err() {
                metrics::counter!("latchkey_cache_invalidations_dropped_total").increment(1);
            }
        }
    }

    fn drop_user_sessions(&self, user_id: Uuid) {
        if self
            .sessions
            .invalidate_entries_if(move |_, c| c.user_id == user_id)
            .is_err()
        {
            self.sessions.invalidate_all();
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
        self.tell_peers(Invalidation::Session(id));
    }

    /// Forgets every session of a user.
    pub(crate) fn forget_user(&self, user_id: Uuid) {
        self.drop_user_sessions(user_id);
        self.tell_peers(Invalidation::User(user_id));
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
        self.tell_peers(Invalidation::Profile(user_id));
    }

    /// Whether `jti` is denylisted, if remembered.
    pub(crate) fn denied(&self, jti: Uuid) -> Option<bool> {
        self.denied.get(&jti)
    }

    /// Remembers a denylist answer as just read from the store.
    pub(crate) fn remember_denied(&self, jti: Uuid, denied: bool) {
        self.denied.insert(jti, denied);
    }

    /// Remembers that `jti` was just denied here, and tells the peers (which
    /// may remember it as not denied).
    pub(crate) fn deny(&self, jti: Uuid) {
        self.denied.insert(jti, true);
        self.tell_peers(Invalidation::Denied(jti));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidations_round_trip_and_garbage_is_refused() {
        let id = Uuid::now_v7();
        for inv in [
            Invalidation::Session(id),
            Invalidation::User(id),
            Invalidation::Denied(id),
            Invalidation::Profile(id),
        ] {
            assert_eq!(Invalidation::decode(&inv.encode()), Some(inv));
        }
        for garbage in ["", "s", "x:0", "s:not-a-uuid", ":", "s:"] {
            assert_eq!(Invalidation::decode(garbage), None, "{garbage}");
        }
    }

    #[tokio::test]
    async fn drops_made_here_are_told_and_drops_told_are_applied_not_retold() {
        let here = AccessCache::default();
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        here.share_with(tx);
        let (jti, user) = (Uuid::now_v7(), Uuid::now_v7());
        here.deny(jti);
        here.forget_user(user);
        here.remember_denied(Uuid::now_v7(), true); // a store read: not told
        assert_eq!(rx.recv().await, Some(Invalidation::Denied(jti)));
        assert_eq!(rx.recv().await, Some(Invalidation::User(user)));
        assert!(rx.try_recv().is_err());

        // Another node remembered the token as not denied; the drop reaches it.
        let there = AccessCache::default();
        there.remember_denied(jti, false);
        assert_eq!(there.denied(jti), Some(false));
        there.apply(Invalidation::Denied(jti));
        assert_eq!(there.denied(jti), None);
    }
}
