//! The event delivery worker: takes security events from the event table
//! (the outbox: an event is there once its transaction commits) to the
//! webhooks and, when configured, to a Redis stream. One task per node; each
//! round:
//!
//! 1. **Dispatch** (one node at a time, by lease on the `webhooks` position):
//!    the events committed after the position, in commit order, become one
//!    queued delivery per subscribed webhook, written in the transaction that
//!    moves the position, so an event is queued exactly once, even if the
//!    node dies between the two. Alerts (events at or above
//!    `events.alert_min_severity`) are logged here, once per deployment.
//! 2. **Deliver** (every node): due deliveries are claimed by lease (SKIP
//!    LOCKED on PostgreSQL), POSTed signed (Standard Webhooks) with at most
//!    `webhooks.max_in_flight_per_endpoint` attempts in flight per endpoint,
//!    and retried with jittered exponential backoff; after
//!    `webhooks.max_attempts` they are dead letters. A node that dies mid
//!    attempt leaves the delivery due again when its lease runs out: delivery
//!    is at least once, and receivers deduplicate by `webhook-id`.
//! 3. **Stream** (one node at a time, by lease on the `redis_stream`
//!    position): the same events are `XADD`ed to `events.redis_stream`
//!    (`MAXLEN ~`), then the position moves: at least once, in order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use futures::stream::{FuturesUnordered, StreamExt};
use latchkey_adapters::log_every::{LogEvery, TROUBLE_INTERVAL};
use latchkey_adapters::redis::Redis;
use latchkey_core::audit::chain::Stored;
use latchkey_core::audit::{SecurityEvent, Severity};
use latchkey_core::auth::WebhookSettings;
use latchkey_core::clock::Clock;
use latchkey_core::ports::{Store, StoreError};
use latchkey_core::retry::Backoff;
use latchkey_core::webhooks::signing::signature_header;
use latchkey_core::webhooks::{
    bounded_error, ClaimedDelivery, NewDelivery, Webhook, WebhookSender, DISPATCH_CURSOR,
};
use serde::Serialize;
use time::{Duration, OffsetDateTime};
use tokio::sync::{watch, Semaphore};
use uuid::Uuid;

use crate::passes::Passes;
use crate::routes::events::SecurityEventBody;

/// Events read from the table per dispatch or stream step.
pub const EVENT_BATCH: u32 = 200;
/// Deliveries claimed per round.
pub const DELIVERY_BATCH: u32 = 16;
/// Pause between rounds that found nothing to do (a commit on this node
/// starts the next round at once).
pub const IDLE: StdDuration = StdDuration::from_millis(500);
/// How long a position's holder keeps it without renewing.
pub const POSITION_LEASE: Duration = Duration::seconds(30);
/// The name of the Redis stream's position in the event table.
pub const STREAM_POSITION: &str = "redis_stream";
/// After a commit wakes the worker, how long it waits for more commits to
/// join the same round (a burst of sign-ins costs a few rounds, not one each).
pub const COALESCE: StdDuration = StdDuration::from_millis(100);
/// With no webhook at all, how often the dispatch position is moved on (and
/// the alerts of the events passed logged) at most.
const IDLE_DISPATCH: StdDuration = StdDuration::from_secs(1);
/// How often the dead-letter gauge is refreshed at least.
const GAUGE_REFRESH: StdDuration = StdDuration::from_secs(5);

/// How the worker delivers.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Attempts before a dead letter.
    pub max_attempts: u32,
    /// Delays between attempts.
    pub backoff: Backoff,
    /// One attempt's limit.
    pub timeout: StdDuration,
    /// Attempts in flight per endpoint on this node.
    pub per_endpoint: usize,
    /// Events at or above this are alerts.
    pub alert_min: Severity,
    /// The Redis stream's key (with the key prefix) and approximate length.
    pub stream: Option<(String, u64)>,
}

impl DeliverySettings {
    /// The settings of `[webhooks]` and `[events]`.
    pub fn from_config(config: &crate::config::Config) -> Self {
        let w = &config.webhooks;
        let seconds = |s: u64| Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX));
        Self {
            max_attempts: w.max_attempts,
            backoff: Backoff {
                base: seconds(w.retry_base_seconds),
                max: seconds(w.retry_max_seconds),
                factor: 3,
            },
            timeout: StdDuration::from_secs(w.timeout_seconds),
            per_endpoint: w.max_in_flight_per_endpoint.max(1),
            alert_min: Severity::parse(&config.events.alert_min_severity)
                .unwrap_or(Severity::Critical),
            stream: config.events.redis_stream.as_ref().map(|key| {
                (
                    format!("{}{key}", config.redis.key_prefix),
                    config.events.redis_stream_maxlen,
                )
            }),
        }
    }

    /// How long a claim reserves a delivery: enough for every attempt of a
    /// round queued behind one endpoint's limit, plus two attempts of margin.
    pub fn lease(&self) -> Duration {
        let waves = i32::try_from(DELIVERY_BATCH as usize / self.per_endpoint + 1).unwrap_or(1);
        Duration::try_from(self.timeout).unwrap_or(Duration::minutes(1)) * (waves + 2)
    }
}

/// The HTTP sender of `[webhooks]` (SSRF-guarded, bounded by the timeout).
pub fn sender(
    config: &crate::config::Config,
) -> Result<Arc<dyn WebhookSender>, crate::startup::StartupError> {
    let sender = latchkey_adapters::webhook_http::HttpWebhookSender::new(
        StdDuration::from_secs(config.webhooks.timeout_seconds),
        config.webhooks_allow_private(),
    )
    .map_err(|_| {
        crate::startup::StartupError::Config(vec![crate::config::Problem::new(
            "webhooks",
            "the HTTP client for webhooks could not be set up (TLS roots?)",
        )])
    })?;
    Ok(Arc::new(sender))
}

/// What a webhook receives: API.md's `{"id","type","occurred_at","data"}`.
#[derive(Debug, Serialize)]
pub struct WebhookPayload {
    /// The event's id (also `webhook-id`).
    pub id: Uuid,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When it happened.
    #[serde(with = "latchkey_core::time_fmt::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// The `SecurityEvent`.
    pub data: SecurityEventBody,
}

impl WebhookPayload {
    /// The payload of `event`.
    pub fn of(event: &SecurityEvent) -> Self {
        Self {
            id: event.id,
            kind: event.kind.as_str(),
            occurred_at: event.created_at,
            data: SecurityEventBody::from(event),
        }
    }
}

/// One node's event delivery worker.
pub struct Worker {
    store: Arc<dyn Store>,
    sender: Arc<dyn WebhookSender>,
    webhooks: WebhookSettings,
    clock: Arc<dyn Clock>,
    settings: DeliverySettings,
    redis: Option<Arc<Redis>>,
    /// This node's name as a position holder.
    holder: String,
    /// Attempts in flight per endpoint.
    limits: HashMap<Uuid, Arc<Semaphore>>,
    /// The positions this node holds: where each is and until when the lease
    /// taken for it runs (renewed once half of it is gone, so a round does not
    /// write to hold it).
    held: HashMap<&'static str, (i64, OffsetDateTime)>,
    /// When the dispatch position last moved.
    dispatched_at: tokio::time::Instant,
    /// The database's trouble, logged at most once per [`TROUBLE_INTERVAL`].
    store_trouble: LogEvery,
    /// Redis's trouble with the stream, likewise.
    stream_trouble: LogEvery,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker delivering with `sender`; `redis` is used for the stream.
    pub fn new(
        store: Arc<dyn Store>,
        sender: Arc<dyn WebhookSender>,
        webhooks: WebhookSettings,
        clock: Arc<dyn Clock>,
        settings: DeliverySettings,
        redis: Option<Arc<Redis>>,
    ) -> Self {
        Self {
            store,
            sender,
            webhooks,
            clock,
            settings,
            redis,
            holder: Uuid::new_v4().simple().to_string(),
            limits: HashMap::new(),
            held: HashMap::new(),
            dispatched_at: tokio::time::Instant::now(),
            store_trouble: LogEvery::new(TROUBLE_INTERVAL),
            stream_trouble: LogEvery::new(TROUBLE_INTERVAL),
        }
    }

    /// Runs rounds until `stop` turns true. After a round with nothing to do
    /// it waits [`IDLE`], or less when events commit on this node or
    /// `passes` asks for a round.
    pub async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
        mut commits: watch::Receiver<u64>,
        passes: Passes,
    ) {
        let mut gauge_at = tokio::time::Instant::now();
        self.refresh_gauge().await;
        loop {
            let pass = passes.start();
            let busy = self.round().await;
            if busy || gauge_at.elapsed() >= GAUGE_REFRESH {
                self.refresh_gauge().await;
                gauge_at = tokio::time::Instant::now();
            }
            if *stop.borrow() {
                break;
            }
            if !busy {
                passes.finish(pass);
                let woken_by_commit = tokio::select! {
                    () = tokio::time::sleep(IDLE) => false,
                    _ = commits.changed() => true,
                    () = passes.requested() => false,
                    _ = stop.wait_for(|s| *s) => break,
                };
                if woken_by_commit {
                    tokio::select! {
                        () = tokio::time::sleep(COALESCE) => {}
                        () = passes.requested() => {}
                        _ = stop.wait_for(|s| *s) => break,
                    }
                }
            }
        }
        // Stopping: another node takes over the positions at once.
        if let Err(e) = self.store.release_positions(&self.holder).await {
            tracing::warn!(error = %e, "event positions not released; another node takes them when the lease ends");
        }
    }

    /// One round; `true` when it did something (another round follows at
    /// once). Store trouble is logged and the round counts as idle.
    pub async fn round(&mut self) -> bool {
        let mut busy = false;
        let dispatched = self.dispatch().await;
        let delivered = self.deliver().await;
        let streamed = if self.settings.stream.is_some() {
            self.stream().await
        } else {
            Ok(false)
        };
        for outcome in [dispatched, delivered, streamed] {
            match outcome {
                Ok(did) => busy |= did,
                Err(e) => {
                    if let Some(occurrences) = self.store_trouble.hit() {
                        tracing::warn!(error = %e, occurrences, "event delivery: the database is unavailable; retrying");
                    }
                }
            }
        }
        busy
    }

    /// The events after position `name`, if this node holds it (taking or
    /// renewing the lease only when half of it is gone).
    async fn next_events(
        &mut self,
        name: &'static str,
    ) -> Result<Option<(i64, Vec<Stored>)>, StoreError> {
        let now = self.clock.now();
        let from = match self.held.get(name) {
            Some((seq, until)) if *until - now > POSITION_LEASE / 2 => *seq,
            _ => {
                self.held.remove(name);
                let Some(seq) = self
                    .store
                    .lease_position(name, &self.holder, now, POSITION_LEASE)
                    .await?
                else {
                    return Ok(None);
                };
                self.held.insert(name, (seq, now + POSITION_LEASE));
                seq
            }
        };
        let events = self.store.chained_events(from, EVENT_BATCH).await?;
        Ok((!events.is_empty()).then_some((from, events)))
    }

    /// Moves the held position `name` to `to` with `deliveries`; `false` (and
    /// forgotten) when another node holds it now.
    async fn advance(
        &mut self,
        name: &'static str,
        from: i64,
        to: i64,
        deliveries: &[NewDelivery],
    ) -> Result<bool, StoreError> {
        let moved = self
            .store
            .advance_position(name, &self.holder, from, to, deliveries)
            .await;
        match (&moved, self.held.get_mut(name)) {
            (Ok(true), Some(held)) => held.0 = to,
            _ => {
                self.held.remove(name);
            }
        }
        moved
    }

    /// Step 1 (see the module docs).
    async fn dispatch(&mut self) -> Result<bool, StoreError> {
        let Some((from, events)) = self.next_events(DISPATCH_CURSOR).await? else {
            return Ok(false);
        };
        let to = events.last().map_or(from, |s| s.link.seq);
        let hooks = self.store.webhooks().await?;
        // Nothing to queue: the position (and the alert log) moves at most
        // once a second, unless a full batch waits.
        if hooks.is_empty()
            && events.len() < EVENT_BATCH as usize
            && self.dispatched_at.elapsed() < IDLE_DISPATCH
        {
            return Ok(false);
        }
        let now = self.clock.now();
        let min = self.settings.alert_min;
        let deliveries: Vec<NewDelivery> = events
            .iter()
            .flat_map(|stored| {
                hooks
                    .iter()
                    .filter(move |h| {
                        stored.link.seq > h.after_seq && h.events.matches(stored.event.kind, min)
                    })
                    .map(move |h| NewDelivery {
                        id: Uuid::now_v7(),
                        webhook_id: h.id,
                        event_id: stored.event.id,
                        kind: stored.event.kind,
                        created_at: now,
                    })
            })
            .collect();
        let moved = self.advance(DISPATCH_CURSOR, from, to, &deliveries).await?;
        if moved {
            self.dispatched_at = tokio::time::Instant::now();
            for stored in &events {
                log_alert(&stored.event, min);
            }
        }
        Ok(moved)
    }

    /// Step 2 (see the module docs).
    async fn deliver(&mut self) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_deliveries(now, self.settings.lease(), DELIVERY_BATCH)
            .await?;
        if claimed.is_empty() {
            return Ok(false);
        }
        let hooks: HashMap<Uuid, Webhook> = self
            .store
            .webhooks()
            .await?
            .into_iter()
            .map(|h| (h.id, h))
            .collect();
        self.limits.retain(|id, _| hooks.contains_key(id));
        let mut planned = Vec::with_capacity(claimed.len());
        for delivery in claimed {
            // A webhook deleted since the claim took its deliveries with it.
            if let Some(hook) = hooks.get(&delivery.webhook_id) {
                let per_endpoint = self.settings.per_endpoint;
                let limit = Arc::clone(
                    self.limits
                        .entry(hook.id)
                        .or_insert_with(|| Arc::new(Semaphore::new(per_endpoint))),
                );
                planned.push((delivery, hook, limit));
            }
        }
        let this = &*self;
        let mut attempts: FuturesUnordered<_> = planned
            .into_iter()
            .map(|(delivery, hook, limit)| async move {
                let _permit = limit.acquire_owned().await;
                this.attempt(&delivery, hook).await;
            })
            .collect();
        while attempts.next().await.is_some() {}
        Ok(true)
    }

    /// One attempt of `delivery` to `hook`, and its outcome recorded.
    async fn attempt(&self, delivery: &ClaimedDelivery, hook: &Webhook) {
        let started = self.clock.now();
        let outcome = match self.store.event(delivery.event_id).await {
            Ok(Some(event)) => self.post(&event, hook, started).await,
            Ok(None) => Err(Some("the event is no longer stored".to_owned())),
            Err(e) => {
                tracing::warn!(error = %e, "webhook event unreadable; the lease will expire and retry");
                return;
            }
        };
        let store = &self.store;
        let result = match outcome {
            Ok(()) => {
                metrics::counter!("latchkey_webhook_deliveries_total", "result" => "delivered")
                    .increment(1);
                store.delivery_succeeded(delivery.id, started).await
            }
            Err(why) => {
                let why = why.unwrap_or_default();
                if delivery.attempts >= self.settings.max_attempts {
                    metrics::counter!("latchkey_webhook_deliveries_total", "result" => "dead")
                        .increment(1);
                    tracing::warn!(delivery_id = %delivery.id, webhook_id = %hook.id, attempts = delivery.attempts, "webhook delivery given up: dead letter");
                    store.delivery_dead(delivery.id, started, &why).await
                } else {
                    metrics::counter!("latchkey_webhook_deliveries_total", "result" => "failed")
                        .increment(1);
                    tracing::info!(delivery_id = %delivery.id, webhook_id = %hook.id, attempts = delivery.attempts, "webhook delivery failed; will retry");
                    let next = started + self.settings.backoff.jittered(delivery.attempts);
                    store.delivery_failed(delivery.id, next, &why).await
                }
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, delivery_id = %delivery.id, "webhook outcome not recorded; the lease will expire and retry");
        }
    }

    /// Signs and POSTs `event` to `hook`; `Err(why)` for a failed attempt.
    async fn post(
        &self,
        event: &SecurityEvent,
        hook: &Webhook,
        now: OffsetDateTime,
    ) -> Result<(), Option<String>> {
        let body = serde_json::to_vec(&WebhookPayload::of(event))
            .map_err(|e| Some(format!("the event could not be encoded: {e}")))?;
        let current = self
            .webhooks
            .open_secret(hook.id, &hook.secret_sealed)
            .ok_or_else(|| {
                Some("the signing secret cannot be opened (master key changed?)".to_owned())
            })?;
        let previous = hook
            .previous
            .as_ref()
            .filter(|(_, until)| *until > now)
            .and_then(|(sealed, _)| self.webhooks.open_secret(hook.id, sealed));
        let mut secrets = vec![&current];
        secrets.extend(previous.as_ref());
        let id = event.id.to_string();
        let timestamp = now.unix_timestamp();
        let headers = [
            ("webhook-id", id.clone()),
            ("webhook-timestamp", timestamp.to_string()),
            (
                "webhook-signature",
                signature_header(&secrets, &id, timestamp, &body),
            ),
        ];
        self.sender
            .post(&hook.url, &headers, body)
            .await
            .map_err(|f| Some(bounded_error(&f.0)))
    }

    /// Step 3 (see the module docs).
    async fn stream(&mut self) -> Result<bool, StoreError> {
        let (Some((key, maxlen)), Some(redis)) = (self.settings.stream.clone(), self.redis.clone())
        else {
            return Ok(false);
        };
        let Some((from, events)) = self.next_events(STREAM_POSITION).await? else {
            return Ok(false);
        };
        let to = events.last().map_or(from, |s| s.link.seq);
        for stored in &events {
            let payload = serde_json::to_string(&WebhookPayload::of(&stored.event))
                .unwrap_or_else(|_| "{}".into());
            let fields = [
                ("id", stored.event.id.to_string()),
                ("type", stored.event.kind.as_str().to_owned()),
                ("data", payload),
            ];
            if let Err(e) = redis
                .xadd(&key, maxlen, &fields, StdDuration::from_secs(2))
                .await
            {
                // Not moved: the next round sends again from here (a
                // consumer may see the events before this one twice).
                if let Some(occurrences) = self.stream_trouble.hit() {
                    tracing::warn!(error = %e, occurrences, "event stream: Redis did not take an event; retrying");
                }
                metrics::counter!("latchkey_event_stream_failures_total").increment(1);
                return Ok(false);
            }
        }
        self.advance(STREAM_POSITION, from, to, &[]).await
    }

    async fn refresh_gauge(&self) {
        match self.store.dead_letter_count().await {
            #[allow(clippy::cast_precision_loss)] // a gauge; exact below 2^53
            Ok(n) => metrics::gauge!("latchkey_webhook_dead_letters").set(n as f64),
            Err(e) => tracing::warn!(error = %e, "dead letter count unavailable"),
        }
    }
}

/// Logs `event` when it is an alert: `error` for critical, `warn` below. The
/// line names the event, never its personal fields.
fn log_alert(event: &SecurityEvent, min: Severity) {
    let (category, severity) = event.kind.class();
    if severity < min {
        return;
    }
    let (kind, category, severity) = (event.kind.as_str(), category.as_str(), severity.as_str());
    if severity == Severity::Critical.as_str() {
        tracing::error!(alert = true, event_id = %event.id, kind, category, severity, user_id = ?event.user_id, "security alert");
    } else {
        tracing::warn!(alert = true, event_id = %event.id, kind, category, severity, user_id = ?event.user_id, "security alert");
    }
}
