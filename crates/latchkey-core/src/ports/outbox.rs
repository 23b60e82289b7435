//! The mail outbox.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::mail::QueuedMail;

use super::StoreError;

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
