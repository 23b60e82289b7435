//! The security event log.

use async_trait::async_trait;

use crate::audit::SecurityEvent;

use super::StoreError;

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
