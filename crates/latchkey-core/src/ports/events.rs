//! The security event log.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::audit::chain::{Head, Stored};
use crate::audit::live::LiveEvents;
use crate::audit::{EventKind, SecurityEvent};

use super::StoreError;

/// The append-only security event log, in one hash chain
/// ([`crate::audit::chain`]).
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends an event, chained as its own transaction commits.
    async fn record_event(&self, event: &SecurityEvent) -> Result<(), StoreError>;

    /// Events matching `filter`, newest first (by id: UUIDv7), before the
    /// event `before` when given, at most `limit`.
    async fn events(
        &self,
        filter: &EventFilter,
        before: Option<uuid::Uuid>,
        limit: u32,
    ) -> Result<Vec<SecurityEvent>, StoreError>;

    /// The user's events, newest first, at most `limit`.
    async fn user_events(
        &self,
        user_id: uuid::Uuid,
        limit: u32,
    ) -> Result<Vec<SecurityEvent>, StoreError> {
        self.events(&EventFilter::of_user(user_id), None, limit)
            .await
    }

    /// The event `id`, if stored.
    async fn event(&self, id: uuid::Uuid) -> Result<Option<SecurityEvent>, StoreError>;

    /// The chain head as stored (the last place given and its hash).
    async fn chain_head(&self) -> Result<Head, StoreError>;

    /// Up to `limit` chained events after place `after`, in place order, as
    /// stored (for the verifier: nothing is checked here).
    async fn chained_events(&self, after: i64, limit: u32) -> Result<Vec<Stored>, StoreError>;

    /// The place and hash of the last chained event recorded before `at`
    /// ([`Head::EMPTY`] when there is none): where a walk `--since at` starts.
    async fn chain_before(&self, at: OffsetDateTime) -> Result<Head, StoreError>;

    /// How many stored events have no place in the chain (none, unless a row
    /// was written under the store).
    async fn unchained_events(&self) -> Result<u64, StoreError>;

    /// Up to `limit` of the user's events placed after `after`, in place
    /// order (which is commit order: a place is given under the chain head's
    /// lock at commit), each with its place.
    async fn user_events_after(
        &self,
        user_id: uuid::Uuid,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, SecurityEvent)>, StoreError>;

    /// The place of the user's event `id`; `None` when it is not theirs, not
    /// stored (any more) or not chained.
    async fn user_event_place(
        &self,
        user_id: uuid::Uuid,
        id: uuid::Uuid,
    ) -> Result<Option<i64>, StoreError>;

    /// Tells `live` of every later commit of events (after it committed).
    /// Set once; later calls are ignored.
    fn notify_commits(&self, live: LiveEvents);
}

/// Which events a listing shows; every field set narrows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// About this account only.
    pub user_id: Option<uuid::Uuid>,
    /// Of these kinds only (`Some(empty)` matches nothing).
    pub kinds: Option<Vec<EventKind>>,
    /// Recorded at or after.
    pub since: Option<OffsetDateTime>,
    /// Recorded before.
    pub until: Option<OffsetDateTime>,
}

impl EventFilter {
    /// Every event about `user_id`.
    pub fn of_user(user_id: uuid::Uuid) -> Self {
        Self {
            user_id: Some(user_id),
            ..Self::default()
        }
    }
}
