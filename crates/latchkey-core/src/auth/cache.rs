//! A short-lived in-process memory of access-token checks (session liveness and
//! the `jti` denylist), of user profiles and of what each user may do (roles
//! and disabled state, checked by the admin API), so a bearer request —
//! `GET /v1/me` and admin reads included — usually costs no database
//! round-trip.
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
//!
//! A store read that began before a drop is never remembered after it: every
//! answer is remembered with the [`Ticket`] taken before its read, and an
//! answer whose entry was dropped since (by generation counters, bumped before
//! each drop) is dropped again at once. So a revocation that commits while a
//! request is reading the session cannot be undone by that request's read.

use std::time::Duration;

use moka::sync::Cache;
use time::OffsetDateTime;
use uuid::Uuid;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::account::User;
use crate::ports::Access;
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
    /// What a user may do (roles, disabled).
    Access(Uuid),
}

impl Invalidation {
    /// The compact text form (`s:`, `u:`, `d:`, `p:` or `a:` and the id).
    pub fn encode(&self) -> String {
        let (tag, id) = match self {
            Self::Session(id) => ('s', id),
            Self::User(id) => ('u', id),
            Self::Denied(id) => ('d', id),
            Self::Profile(id) => ('p', id),
            Self::Access(id) => ('a', id),
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
            "a" => Some(Self::Access(id)),
            _ => None,
        }
    }
}

/// Generation counters striped by key: how many drops have touched each
/// stripe, and how many drops touched every key at once.
struct Generations {
    stripes: [AtomicU64; STRIPES],
    all: AtomicU64,
}

/// Stripes per kind of entry (drops of one key rarely delay another's caching).
const STRIPES: usize = 64;

/// Taken before a store read: the generations the read may be remembered under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    index: usize,
    stripe: u64,
    all: u64,
}

impl Generations {
    fn new() -> Self {
        Self {
            stripes: std::array::from_fn(|_| AtomicU64::new(0)),
            all: AtomicU64::new(0),
        }
    }

    fn index(id: &Uuid) -> usize {
        // UUIDv7 ends in random bits; any id spreads well enough.
        (id.as_u128() % STRIPES as u128) as usize
    }

    fn ticket(&self, id: &Uuid) -> Ticket {
        let index = Self::index(id);
        Ticket {
            index,
            stripe: self.stripes[index].load(Ordering::SeqCst),
            all: self.all.load(Ordering::SeqCst),
        }
    }

    /// Called before dropping `id`.
    fn bump(&self, id: &Uuid) {
        self.stripes[Self::index(id)].fetch_add(1, Ordering::SeqCst);
    }

    /// Called before dropping many keys at once.
    fn bump_all(&self) {
        self.all.fetch_add(1, Ordering::SeqCst);
    }

    fn unchanged(&self, t: Ticket) -> bool {
        self.stripes[t.index].load(Ordering::SeqCst) == t.stripe
            && self.all.load(Ordering::SeqCst) == t.all
    }
}

/// Remembers `value` for `key` as read under `ticket`: when a drop of the key
/// began since the ticket was taken, the entry is dropped again (the drop
/// bumps its generation before it removes the entry, so either the drop
/// removes this insert or this check sees the drop).
fn remember<V: Clone + Send + Sync + 'static>(
    cache: &Cache<Uuid, V>,
    generations: &Generations,
    key: Uuid,
    value: V,
    ticket: Ticket,
) {
    cache.insert(key, value);
    if !generations.unchanged(ticket) {
        cache.invalidate(&key);
    }
}

/// See the module docs.
#[derive(Clone)]
pub struct AccessCache {
    sessions: Cache<Uuid, CachedSession>,
    denied: Cache<Uuid, bool>,
    profiles: Cache<Uuid, Arc<User>>,
    access: Cache<Uuid, Access>,
    /// Drop generations of `sessions`, `denied`, `profiles` and `access`.
    generations: Arc<[Generations; 4]>,
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
            access: Cache::builder()
                .time_to_live(ttl)
                .max_capacity(capacity)
                .build(),
            generations: Arc::new(std::array::from_fn(|_| Generations::new())),
            peers: Arc::default(),
        }
    }

    fn session_generations(&self) -> &Generations {
        &self.generations[0]
    }

    fn denied_generations(&self) -> &Generations {
        &self.generations[1]
    }

    fn profile_generations(&self) -> &Generations {
        &self.generations[2]
    }

    fn access_generations(&self) -> &Generations {
        &self.generations[3]
    }

    /// The ticket to take before reading what `user_id` may do.
    pub(crate) fn access_ticket(&self, user_id: Uuid) -> Ticket {
        self.access_generations().ticket(&user_id)
    }

    /// What `user_id` may do, if remembered.
    pub(crate) fn access(&self, user_id: Uuid) -> Option<Access> {
        self.access.get(&user_id)
    }

    /// Remembers what a user may do, as read from the store under `ticket`.
    pub(crate) fn remember_access(&self, user_id: Uuid, access: Access, ticket: Ticket) {
        remember(
            &self.access,
            self.access_generations(),
            user_id,
            access,
            ticket,
        );
    }

    /// Forgets what a user may do (their roles changed, or they were disabled
    /// or enabled), here and on the other nodes.
    pub(crate) fn forget_access(&self, user_id: Uuid) {
        self.drop_access(user_id);
        self.tell_peers(Invalidation::Access(user_id));
    }

    fn drop_access(&self, user_id: Uuid) {
        self.access_generations().bump(&user_id);
        self.access.invalidate(&user_id);
    }

    /// The ticket to take before reading session `id` from the store.
    pub(crate) fn session_ticket(&self, id: Uuid) -> Ticket {
        self.session_generations().ticket(&id)
    }

    /// The ticket to take before reading the denylist answer of `jti`.
    pub(crate) fn denied_ticket(&self, jti: Uuid) -> Ticket {
        self.denied_generations().ticket(&jti)
    }

    /// The ticket to take before reading the profile of `user_id`.
    pub(crate) fn profile_ticket(&self, user_id: Uuid) -> Ticket {
        self.profile_generations().ticket(&user_id)
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
            Invalidation::Session(id) => self.drop_session(id),
            Invalidation::User(_) => {
                self.session_generations().bump_all();
                self.sessions.invalidate_all();
            }
            Invalidation::Denied(jti) => {
                self.denied_generations().bump(&jti);
                self.denied.invalidate(&jti);
            }
            Invalidation::Profile(user_id) => self.drop_profile(user_id),
            Invalidation::Access(user_id) => self.drop_access(user_id),
        }
    }

    fn tell_peers(&self, invalidation: Invalidation) {
        if let Some(peers) = self.peers.get() {
            if peers.try_send(invalidation).is_err() {
                metrics::counter!("latchkey_cache_invalidations_dropped_total").increment(1);
            }
        }
    }

    fn drop_session(&self, id: Uuid) {
        self.session_generations().bump(&id);
        self.sessions.invalidate(&id);
    }

    fn drop_profile(&self, user_id: Uuid) {
        self.profile_generations().bump(&user_id);
        self.profiles.invalidate(&user_id);
    }

    fn drop_user_sessions(&self, user_id: Uuid) {
        self.session_generations().bump_all();
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

    /// Remembers a session's state as read from the store under `ticket`.
    pub(crate) fn remember_session(&self, session: &Session, ticket: Ticket) {
        let live_until = if session.revoked_at.is_some() {
            OffsetDateTime::UNIX_EPOCH
        } else {
            session.idle_expires_at.min(session.absolute_expires_at)
        };
        let entry = CachedSession {
            user_id: session.user_id,
            live_until,
        };
        remember(
            &self.sessions,
            self.session_generations(),
            session.id,
            entry,
            ticket,
        );
    }

    /// Forgets one session (it was revoked or changed here).
    pub(crate) fn forget_session(&self, id: Uuid) {
        self.drop_session(id);
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

    /// Remembers a profile as read from the store under `ticket`.
    pub(crate) fn remember_profile(&self, user: User, ticket: Ticket) {
        remember(
            &self.profiles,
            self.profile_generations(),
            user.id,
            Arc::new(user),
            ticket,
        );
    }

    /// Forgets a profile (the user was changed here).
    pub(crate) fn forget_profile(&self, user_id: Uuid) {
        self.drop_profile(user_id);
        self.tell_peers(Invalidation::Profile(user_id));
    }

    /// Whether `jti` is denylisted, if remembered.
    pub(crate) fn denied(&self, jti: Uuid) -> Option<bool> {
        self.denied.get(&jti)
    }

    /// Remembers a denylist answer as read from the store under `ticket`.
    pub(crate) fn remember_denied(&self, jti: Uuid, denied: bool, ticket: Ticket) {
        remember(&self.denied, self.denied_generations(), jti, denied, ticket);
    }

    /// Remembers that `jti` was just denied here (a "not denied" read in
    /// flight cannot overwrite it), and tells the peers (which may remember it
    /// as not denied).
    pub(crate) fn deny(&self, jti: Uuid) {
        self.denied_generations().bump(&jti);
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
            Invalidation::Access(id),
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
        let other = Uuid::now_v7();
        here.remember_denied(other, true, here.denied_ticket(other)); // a store read: not told
        assert_eq!(rx.recv().await, Some(Invalidation::Denied(jti)));
        assert_eq!(rx.recv().await, Some(Invalidation::User(user)));
        assert!(rx.try_recv().is_err());

        // Another node remembered the token as not denied; the drop reaches it.
        let there = AccessCache::default();
        there.remember_denied(jti, false, there.denied_ticket(jti));
        assert_eq!(there.denied(jti), Some(false));
        there.apply(Invalidation::Denied(jti));
        assert_eq!(there.denied(jti), None);
    }

    fn live_session(user_id: Uuid) -> Session {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        Session {
            id: Uuid::now_v7(),
            user_id,
            created_at: now,
            last_seen_at: now,
            idle_expires_at: now + time::Duration::days(7),
            absolute_expires_at: now + time::Duration::days(7),
            revoked_at: None,
            ip: None,
            user_agent: None,
            device: crate::session::Device::default(),
            fingerprint: String::new(),
            remember_me: false,
            amr: vec!["pwd".into()],
            cookie_mode: Some(false),
        }
    }

    /// The race of the issue: a request reads a live session, the session is
    /// revoked (and its entry dropped) before the read is remembered.
    #[test]
    fn a_read_that_began_before_a_revocation_is_not_remembered_after_it() {
        let cache = AccessCache::default();
        let session = live_session(Uuid::now_v7());
        let now = session.created_at;
        for revoke in [
            |c: &AccessCache, s: &Session| c.forget_session(s.id),
            |c: &AccessCache, s: &Session| c.forget_user(s.user_id),
            |c: &AccessCache, s: &Session| c.apply(Invalidation::Session(s.id)),
            |c: &AccessCache, s: &Session| c.apply(Invalidation::User(s.user_id)),
        ] {
            let ticket = cache.session_ticket(session.id); // the read begins
            revoke(&cache, &session); // the revocation commits and drops
            cache.remember_session(&session, ticket); // the read lands
            assert_eq!(cache.session_live(session.id, session.user_id, now), None);
        }
        // Without a drop in between, the answer is remembered.
        let ticket = cache.session_ticket(session.id);
        cache.remember_session(&session, ticket);
        assert_eq!(
            cache.session_live(session.id, session.user_id, now),
            Some(true)
        );
        let jti = Uuid::now_v7();
        let ticket = cache.denied_ticket(jti);
        cache.deny(jti);
        cache.remember_denied(jti, false, ticket);
        assert_ne!(
            cache.denied(jti),
            Some(false),
            "a stale 'not denied' never wins"
        );
        let user = live_session(Uuid::now_v7()).user_id;
        let ticket = cache.profile_ticket(user);
        cache.forget_profile(user);
        let stale = User {
            id: user,
            email: "ada@example.com".into(),
            email_normalized: "ada@example.com".into(),
            name: Some("stale".into()),
            password_hash: String::new(),
            email_verified_at: None,
            disabled_at: None,
            failed_login_count: 0,
            last_login_at: None,
            created_at: now,
            updated_at: now,
            password_changed_at: now,
            mfa: crate::mfa::MfaSummary::default(),
            security_stamp: 0,
            roles: Vec::new(),
        };
        cache.remember_profile(stale, ticket);
        assert!(cache.profile(user).is_none());
    }

    /// Reads and revocations racing on threads: once a revocation's drop has
    /// returned, no read that began before it is remembered.
    #[test]
    fn concurrent_reads_never_outlive_a_drop() {
        let cache = AccessCache::default();
        let session = live_session(Uuid::now_v7());
        let now = session.created_at;
        for _ in 0..200 {
            let revoked = std::sync::atomic::AtomicBool::new(false);
            std::thread::scope(|scope| {
                for _ in 0..4 {
                    scope.spawn(|| {
                        for _ in 0..50 {
                            let ticket = cache.session_ticket(session.id);
                            let read_before_revocation = !revoked.load(Ordering::SeqCst);
                            if read_before_revocation {
                                cache.remember_session(&session, ticket);
                            }
                        }
                    });
                }
                scope.spawn(|| {
                    revoked.store(true, Ordering::SeqCst);
                    cache.forget_session(session.id);
                });
            });
            assert_eq!(cache.session_live(session.id, session.user_id, now), None);
        }
    }
}
