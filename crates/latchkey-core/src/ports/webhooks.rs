//! Webhooks, their deliveries and the delivery workers' positions in the
//! event table.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::webhooks::{ClaimedDelivery, DeadLetter, NewDelivery, NewWebhook, Webhook};

use super::StoreError;

/// Webhooks and the event deliveries made to them.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a webhook that receives the events committed from now on.
    async fn create_webhook(&self, webhook: &NewWebhook) -> Result<Webhook, StoreError>;

    /// Every webhook, oldest first.
    async fn webhooks(&self) -> Result<Vec<Webhook>, StoreError>;

    /// Deletes a webhook made through the API, with its deliveries; `false`
    /// when there is none with that id that is not static.
    async fn delete_webhook(&self, id: Uuid) -> Result<bool, StoreError>;

    /// Makes `secret_sealed` the API-made webhook's secret, the current one
    /// signing alongside until `previous_until`; `None` when there is no such
    /// webhook.
    async fn rotate_webhook_secret(
        &self,
        id: Uuid,
        secret_sealed: &[u8],
        previous_until: OffsetDateTime,
    ) -> Result<Option<Webhook>, StoreError>;

    /// Replaces webhook `id`'s sealed secrets (current, previous) with
    /// `sealed` if they are still `expected`; `false` when they changed.
    async fn reseal_webhook_secrets(
        &self,
        id: Uuid,
        expected: (&[u8], Option<&[u8]>),
        sealed: (&[u8], Option<&[u8]>),
    ) -> Result<bool, StoreError>;

    /// Makes the static webhooks exactly `webhooks`: new ones are created
    /// (receiving the events committed from now on), known ones updated in
    /// place (keeping their position and deliveries), and those no longer
    /// listed deleted.
    async fn sync_static_webhooks(&self, webhooks: &[NewWebhook]) -> Result<(), StoreError>;

    /// Makes the position `name` at the current chain head unless it exists
    /// (the server does it before serving: every event committed after the
    /// start is then delivered).
    async fn ensure_position(&self, name: &str) -> Result<(), StoreError>;

    /// Takes (or keeps) the lease on the position `name` for `holder` until
    /// `now + lease`, creating it at the current chain head if new; returns
    /// the position, or `None` while another holder's lease runs.
    async fn lease_position(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        lease: time::Duration,
    ) -> Result<Option<i64>, StoreError>;

    /// Gives up every position `holder` holds (a node stopping), so another
    /// node takes them over at once instead of after the lease.
    async fn release_positions(&self, holder: &str) -> Result<(), StoreError>;

    /// Moves the position `name` from `from` to `to` and queues
    /// `deliveries`, in one transaction, if `holder` still holds it at
    /// `from`; `false` (nothing written) otherwise. A delivery already queued
    /// for the same webhook and event is not queued twice.
    async fn advance_position(
        &self,
        name: &str,
        holder: &str,
        from: i64,
        to: i64,
        deliveries: &[NewDelivery],
    ) -> Result<bool, StoreError>;

    /// Claims up to `limit` due deliveries for `lease` (their next attempt
    /// moves to `now + lease` and their attempt count up), so no other worker
    /// takes them meanwhile; one that dies leaves them due after the lease.
    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        lease: time::Duration,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;

    /// Delivered.
    async fn delivery_succeeded(&self, id: Uuid, now: OffsetDateTime) -> Result<(), StoreError>;

    /// Failed; tried again at `next_attempt_at`.
    async fn delivery_failed(
        &self,
        id: Uuid,
        next_attempt_at: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Failed its last attempt: a dead letter.
    async fn delivery_dead(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError>;

    /// Dead letters after `after` (by id), oldest first, at most `limit`.
    async fn dead_letters(
        &self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError>;

    /// Makes dead letter `id` due at `now` with a new series of attempts;
    /// `None` when it is not a dead letter.
    async fn retry_dead_letter(
        &self,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Option<DeadLetter>, StoreError>;

    /// How many dead letters there are.
    async fn dead_letter_count(&self) -> Result<u64, StoreError>;
}
