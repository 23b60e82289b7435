//! Who on this node is waiting for new security events, and waking them when
//! events commit: the live event streams (`GET /v1/me/events/stream`) wait
//! for their user's, the delivery workers (webhooks, Redis stream) for any.
//!
//! A wake carries no event, only "look again": a listener reads what is new
//! from the store itself, after the place it last sent. A wake that is lost
//! (a peer's notice dropped by Redis) or merged with others therefore costs
//! latency, never an event, and a listener that is slow to look holds one
//! stored permit, not a queue: nothing here grows with the traffic.
//!
//! The listeners are counted where they register, so the caps (per user and
//! for the node) are enforced at one place, and a listener that is dropped
//! (its client went away) unregisters itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tokio::sync::{mpsc, watch, Notify};
use uuid::Uuid;

use super::SecurityEvent;

/// Open live streams allowed per user on one node, unless configured.
pub const DEFAULT_PER_USER: usize = 5;
/// Open live streams allowed on one node, unless configured.
pub const DEFAULT_PER_NODE: usize = 10_000;

/// The registry of this node's event listeners. Cheap to clone (shared).
#[derive(Clone)]
pub struct LiveEvents(Arc<Hub>);

struct Hub {
    per_user: usize,
    per_node: usize,
    next_id: AtomicU64,
    listeners: Mutex<Listeners>,
    /// Counts commits, for the workers that wait for any event.
    any: watch::Sender<u64>,
    /// Where the users of events committed here are told to the other nodes.
    peers: OnceLock<mpsc::Sender<Uuid>>,
    /// Set when the node stops: every stream ends.
    closing: watch::Sender<bool>,
}

#[derive(Default)]
struct Listeners {
    by_user: HashMap<Uuid, Vec<(u64, Arc<Notify>)>>,
    open: usize,
}

impl std::fmt::Debug for LiveEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveEvents")
            .field("per_user", &self.0.per_user)
            .field("per_node", &self.0.per_node)
            .finish_non_exhaustive()
    }
}

impl Default for LiveEvents {
    fn default() -> Self {
        Self::new(DEFAULT_PER_USER, DEFAULT_PER_NODE)
    }
}

/// Why a listener was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    /// The user has `per_user` streams open on this node already.
    #[error("too many open event streams for this user")]
    User,
    /// The node has `per_node` streams open already.
    #[error("too many open event streams on this node")]
    Node,
}

/// One registered listener for a user's events; unregisters when dropped.
pub struct Listener {
    hub: Arc<Hub>,
    user_id: Uuid,
    id: u64,
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl Listener {
    /// Resolves once an event of the user committed (or was told by a peer)
    /// since the last time it resolved; a wake while nobody waited is kept
    /// (one permit), so none is missed between two looks.
    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut all = self.hub.lock();
        if let Some(list) = all.by_user.get_mut(&self.user_id) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                all.by_user.remove(&self.user_id);
            }
        }
        all.open = all.open.saturating_sub(1);
    }
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Listeners> {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn wake_user(&self, user_id: Uuid) {
        if let Some(list) = self.lock().by_user.get(&user_id) {
            for (_, wake) in list {
                wake.notify_one();
            }
        }
    }
}

impl LiveEvents {
    /// A registry allowing `per_user` open listeners per user and `per_node`
    /// in all (each at least 1).
    pub fn new(per_user: usize, per_node: usize) -> Self {
        Self(Arc::new(Hub {
            per_user: per_user.max(1),
            per_node: per_node.max(1),
            next_id: AtomicU64::new(0),
            listeners: Mutex::new(Listeners::default()),
            any: watch::Sender::new(0),
            peers: OnceLock::new(),
            closing: watch::Sender::new(false),
        }))
    }

    /// Registers a listener for `user_id`'s events, or `Full` when the user or
    /// the node is at its cap (checked and counted in one step: concurrent
    /// opens cannot pass the cap together).
    pub fn listen(&self, user_id: Uuid) -> Result<Listener, Full> {
        let mut all = self.0.lock();
        if all.open >= self.0.per_node {
            return Err(Full::Node);
        }
        let list = all.by_user.entry(user_id).or_default();
        if list.len() >= self.0.per_user {
            return Err(Full::User);
        }
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let wake = Arc::new(Notify::new());
        list.push((id, Arc::clone(&wake)));
        all.open += 1;
        Ok(Listener {
            hub: Arc::clone(&self.0),
            user_id,
            id,
            wake,
        })
    }

    /// How many listeners are open on this node.
    pub fn open(&self) -> usize {
        self.0.lock().open
    }

    /// Called by the store once `events` are committed: wakes this node's
    /// listeners of their users and the workers, and tells the other nodes
    /// (when a peer channel is set; a full channel drops the notice, which
    /// only delays the other nodes' streams until their next look).
    pub fn committed(&self, events: &[SecurityEvent]) {
        let mut users: Vec<Uuid> = events.iter().filter_map(|e| e.user_id).collect();
        users.sort_unstable();
        users.dedup();
        for user in &users {
            self.0.wake_user(*user);
            if let Some(peers) = self.0.peers.get() {
                let _ = peers.try_send(*user);
            }
        }
        self.0.any.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A peer node committed events of `user_id`: wakes this node's listeners
    /// of that user (not told on again).
    pub fn told(&self, user_id: Uuid) {
        self.0.wake_user(user_id);
    }

    /// A receiver that changes at every commit of events on this node (for
    /// the delivery workers: `changed()` resolves once per look, however
    /// many commits happened since the last).
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.0.any.subscribe()
    }

    /// Ends every stream of this node (it is stopping: open streams would
    /// otherwise hold the graceful shutdown until their clients leave).
    pub fn close(&self) {
        self.0.closing.send_replace(true);
    }

    /// A receiver that turns `true` once [`Self::close`] was called.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.0.closing.subscribe()
    }

    /// Sends the users of every later commit to `peers` (the Redis bus). Set
    /// once; later calls are ignored.
    pub fn share_with(&self, peers: mpsc::Sender<Uuid>) {
        let _ = self.0.peers.set(peers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::EventKind;

    fn event(user: Uuid) -> SecurityEvent {
        SecurityEvent {
            id: Uuid::now_v7(),
            user_id: Some(user),
            kind: EventKind::LoggedOut,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            session_id: None,
            ip: None,
            user_agent: None,
            actor_id: None,
            details: None,
        }
    }

    #[tokio::test]
    async fn a_commit_wakes_the_users_listeners_once_and_no_one_else() {
        let live = LiveEvents::default();
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let a = live.listen(alice).unwrap();
        let b = live.listen(bob).unwrap();
        live.committed(&[event(alice), event(alice)]);
        // The wake was kept although nobody waited.
        a.woken().await;
        let pending = tokio::time::timeout(std::time::Duration::from_millis(20), b.woken()).await;
        assert!(pending.is_err(), "bob was woken by alice's event");
        let again = tokio::time::timeout(std::time::Duration::from_millis(20), a.woken()).await;
        assert!(again.is_err(), "two events of one commit woke twice");
    }

    #[test]
    fn caps_count_open_listeners_and_a_dropped_one_frees_its_place() {
        let live = LiveEvents::new(2, 3);
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let a1 = live.listen(alice).unwrap();
        let _a2 = live.listen(alice).unwrap();
        assert_eq!(live.listen(alice).unwrap_err(), Full::User);
        let _b1 = live.listen(bob).unwrap();
        assert_eq!(live.listen(bob).unwrap_err(), Full::Node);
        assert_eq!(live.open(), 3);
        drop(a1);
        assert_eq!(live.open(), 2);
        let _a3 = live.listen(alice).unwrap();
    }

    #[tokio::test]
    async fn peers_hear_each_user_once_per_commit_and_a_full_channel_never_blocks() {
        let live = LiveEvents::default();
        let (tx, mut rx) = mpsc::channel(1);
        live.share_with(tx);
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        live.committed(&[event(alice), event(bob), event(alice)]);
        let first = rx.recv().await.unwrap();
        assert!(first == alice || first == bob);
        assert!(
            rx.try_recv().is_err(),
            "the full channel took more than it holds"
        );
    }
}
