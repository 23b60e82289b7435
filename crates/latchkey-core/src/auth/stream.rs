//! The signed-in user's live event stream (`GET /v1/me/events/stream`): the
//! events of their account as they commit, resumable after the last one
//! received. It reads from the store, after the last place it handed out, at
//! each wake ([`crate::audit::live`]): what is handed out is always what the
//! table holds, in commit order, so a lost wake delays an event and never
//! drops or reorders one.

use uuid::Uuid;
use zeroize::Zeroizing;

use crate::audit::live::{Full, Listener};
use crate::audit::SecurityEvent;

use super::{AuthError, Principal, Sessions};

/// Seconds a client refused for too many open streams is told to wait.
pub const STREAMS_RETRY_AFTER: u64 = 5;

/// Events read from the store per look.
pub const STREAM_BATCH: u32 = 100;

/// One open stream. It stays open while the credential it was opened with
/// stays valid ([`EventStream::still_valid`]); dropping it frees its place
/// under the caps.
pub struct EventStream {
    sessions: Sessions,
    token: Zeroizing<String>,
    user_id: Uuid,
    after: i64,
    listener: Listener,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("user_id", &self.user_id)
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// Opens the live stream of `principal`, authenticated by `token` (a
    /// bearer access token, or the session cookie's). With `last_event_id` (the id of
    /// one of the user's own events), it first replays every later event of
    /// theirs; with none, or an id that is not one of theirs (unknown,
    /// erased, malformed), it starts with the next event committed.
    /// `TooManyStreams` when the user (or this node) has as many streams open
    /// as allowed.
    pub async fn open_event_stream(
        &self,
        principal: &Principal,
        token: &str,
        last_event_id: Option<&str>,
    ) -> Result<EventStream, AuthError> {
        // Listening starts before the start place is read: an event committed
        // in between is both after that place and a wake, never neither.
        let listener = self
            .live
            .listen(principal.user_id)
            .map_err(|full| match full {
                Full::User | Full::Node => AuthError::TooManyStreams,
            })?;
        let resumed = match last_event_id.and_then(|id| Uuid::try_parse(id.trim()).ok()) {
            Some(id) => self.store.user_event_place(principal.user_id, id).await?,
            None => None,
        };
        let after = match resumed {
            Some(place) => place,
            None => self.store.chain_head().await?.seq,
        };
        Ok(EventStream {
            sessions: self.clone(),
            token: Zeroizing::new(token.to_owned()),
            user_id: principal.user_id,
            after,
            listener,
        })
    }
}

impl EventStream {
    /// The next events of the user after those already handed out, in commit
    /// order, at most [`STREAM_BATCH`] (fewer: caught up).
    pub async fn next_events(&mut self) -> Result<Vec<SecurityEvent>, AuthError> {
        let rows = self
            .sessions
            .store
            .user_events_after(self.user_id, self.after, STREAM_BATCH)
            .await?;
        if let Some((place, _)) = rows.last() {
            self.after = *place;
        }
        Ok(rows.into_iter().map(|(_, event)| event).collect())
    }

    /// Resolves when the user may have new events (kept if none waited).
    pub async fn woken(&self) {
        self.listener.woken().await;
    }

    /// Whether the credential the stream was opened with is still valid: the
    /// same checks as every request (signature, expiry, logout, session
    /// revoked). A stream whose credential failed must end.
    pub async fn still_valid(&self) -> bool {
        self.sessions.authenticate(&self.token).await.is_ok()
    }
}
