//! What every service shares: time, the access cache, bounded work after the
//! answer, security events and mail composition (see `notices.rs`).

use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{EventKind, SecurityEvent};
use crate::background::Background;
use crate::clock::Clock;
use crate::ports::CommonPorts;

use super::{new_event, AccessCache, ClientContext, MailLinks};

/// The shared part of every service: one `Arc`, so each service (and each
/// task it leaves for after the answer) carries a pointer, not a copy.
#[derive(Clone)]
pub(crate) struct Common(Arc<CommonParts>);

impl Common {
    /// The shared part made of `parts`.
    pub fn new(parts: CommonParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for Common {
    type Target = CommonParts;
    fn deref(&self) -> &CommonParts {
        &self.0
    }
}

/// What [`Common`] holds.
pub(crate) struct CommonParts {
    /// Security events and queued mail.
    pub store: Arc<dyn CommonPorts>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Remembered access checks, dropped on every change made here.
    pub cache: AccessCache,
    /// Work left for after an answer, bounded.
    pub background: Background,
    /// Links, names and templates used in mail.
    pub links: MailLinks,
}

impl Common {
    /// Now, by the injected clock.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Records a security event; failure to record is logged, never fatal to the
    /// request that caused it.
    pub async fn event(
        &self,
        user_id: Uuid,
        kind: EventKind,
        session_id: Option<Uuid>,
        client: &ClientContext,
    ) {
        self.event_at(user_id, kind, session_id, client, self.now())
            .await;
    }

    /// [`Self::event`] for something that happened at `at` (bookkeeping done
    /// after the answer keeps the time of the request).
    pub async fn event_at(
        &self,
        user_id: Uuid,
        kind: EventKind,
        session_id: Option<Uuid>,
        client: &ClientContext,
        at: OffsetDateTime,
    ) {
        self.record(&new_event(user_id, kind, session_id, client, at))
            .await;
    }

    /// Records `event`; a failure is logged, never the caller's error (the
    /// change it follows is made already).
    pub async fn record(&self, event: &SecurityEvent) {
        if let Err(e) = self.store.record_event(event).await {
            tracing::warn!(error = %e, kind = event.kind.as_str(), "security event not recorded");
        }
    }
}
