//! Telling the other nodes what this node's access cache dropped, over Redis
//! pub/sub (when `redis.url` is set): a logout, a revoked session or a changed
//! profile on one node normally takes effect on every node within
//! milliseconds, instead of within the cache's TTL (5 s). The same channel
//! carries the users whose security events committed here, so the other
//! nodes' live event streams of those users look at once instead of at their
//! next heartbeat. Messages carry the
//! sending node's id, so a node skips its own. Delivery is best effort: a lost
//! message (Redis down, queue full, a subscription being re-established) only
//! falls back on the TTL, and never delays a request.
//!
//! Each node publishes a heartbeat every [`HEARTBEAT`]; a subscription that
//! hears nothing (not even its own heartbeats) for [`IDLE_LIMIT`] is taken for
//! a connection that died silently and is established again. A lost
//! subscription is tried again after at most [`MAX_RESUBSCRIBE_DELAY`], so
//! drops flow again within seconds of Redis being back; its loss is logged at
//! most once per [`TROUBLE_INTERVAL`] (with a count).

use std::sync::Arc;
use std::time::Duration;

use latchkey_adapters::log_every::{LogEvery, TROUBLE_INTERVAL};
use latchkey_adapters::redis::Redis;
use latchkey_core::audit::live::LiveEvents;
use latchkey_core::auth::{AccessCache, Invalidation};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

/// Drops waiting to be published; beyond this they are counted and lost.
pub const QUEUE: usize = 4096;
/// How often each node says it is there.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// Silence after which a subscription is established again.
pub const IDLE_LIMIT: Duration = Duration::from_secs(35);
/// Time allowed for one `PUBLISH`.
const PUBLISH_LIMIT: Duration = Duration::from_millis(250);
/// Time allowed to connect and subscribe.
const CONNECT_LIMIT: Duration = Duration::from_secs(5);
/// First pause before subscribing again; doubles up to [`MAX_RESUBSCRIBE_DELAY`].
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(500);
/// Longest pause between two subscription attempts (an attempt on a Redis
/// that is down costs one refused connection).
pub const MAX_RESUBSCRIBE_DELAY: Duration = Duration::from_secs(2);
/// How long a stopping node keeps publishing what is still queued.
const DRAIN_LIMIT: Duration = Duration::from_secs(1);
/// The heartbeat's message text.
const HEARTBEAT_TEXT: &str = "h";
/// The tag of a message naming a user with newly committed events.
const EVENTS_TAG: &str = "e:";

/// The pub/sub channel of the deployment (under `redis.key_prefix`).
pub fn channel(key_prefix: &str) -> String {
    format!("{key_prefix}cache-invalidations")
}

/// The two tasks [`connect`] starts.
pub struct Bus {
    /// Publishes this node's drops (and heartbeats); ends with the number of
    /// drops Redis did not take.
    pub publisher: tokio::task::JoinHandle<u64>,
    /// Applies the other nodes' drops.
    pub subscriber: tokio::task::JoinHandle<()>,
}

/// Connects `cache` and `live` to the other nodes. The subscriber ends when
/// `stop` is set; the publisher when `stop_publishing` is (set it once
/// requests have drained, so the drops of the last requests still go out).
pub fn connect(
    cache: &AccessCache,
    live: &LiveEvents,
    redis: &Arc<Redis>,
    channel: &str,
    stop: watch::Receiver<bool>,
    stop_publishing: watch::Receiver<bool>,
) -> Bus {
    let node = Uuid::new_v4().simple().to_string();
    let outgoing = share(cache, live);
    Bus {
        publisher: tokio::spawn(publish(
            Arc::clone(redis),
            channel.to_owned(),
            node.clone(),
            outgoing,
            stop_publishing,
        )),
        subscriber: tokio::spawn(subscribe(
            Arc::clone(redis),
            channel.to_owned(),
            node,
            (cache.clone(), live.clone()),
            stop,
        )),
    }
}

/// What this node tells the others: its cache drops and the users of its
/// committed events.
struct Outgoing {
    drops: mpsc::Receiver<Invalidation>,
    events: mpsc::Receiver<Uuid>,
}

/// Makes `cache` and `live` queue what they tell the other nodes.
fn share(cache: &AccessCache, live: &LiveEvents) -> Outgoing {
    let (drops_tx, drops) = mpsc::channel(QUEUE);
    cache.share_with(drops_tx);
    let (events_tx, events) = mpsc::channel(QUEUE);
    live.share_with(events_tx);
    Outgoing { drops, events }
}

/// The publishing half alone, for a process that serves no requests (the
/// operator CLI): its drops reach the running nodes at once instead of within
/// their cache TTL. [`Publisher::finish`] sends what is queued and stops.
pub struct Publisher {
    task: tokio::task::JoinHandle<u64>,
    stop: watch::Sender<bool>,
}

/// Sends every later drop made through `cache`, and the users of every
/// later commit of events told to `live`, to the nodes on `channel`.
pub fn publish_only(
    cache: &AccessCache,
    live: &LiveEvents,
    redis: &Arc<Redis>,
    channel: &str,
) -> Publisher {
    let outgoing = share(cache, live);
    let (stop, stopped) = watch::channel(false);
    Publisher {
        task: tokio::spawn(publish(
            Arc::clone(redis),
            channel.to_owned(),
            Uuid::new_v4().simple().to_string(),
            outgoing,
            stopped,
        )),
        stop,
    }
}

/// The publisher of an operator command, when `redis.url` is set (and valid).
pub fn for_operator(
    config: &crate::config::Config,
    services: &latchkey_core::auth::Services,
) -> Option<Publisher> {
    let redis = Redis::new(config.redis.url.as_deref()?).ok()?;
    Some(publish_only(
        &services.cache,
        &services.live,
        &Arc::new(redis),
        &channel(&config.redis.key_prefix),
    ))
}

impl Publisher {
    /// Publishes what is still queued (for at most a second) and stops.
    /// `true` when Redis took every drop; `false` when some did not reach it
    /// (Redis down or slow): the running nodes then show those changes only
    /// once their cached answers expire.
    pub async fn finish(self) -> bool {
        let _ = self.stop.send(true);
        matches!(self.task.await, Ok(0))
    }
}

async fn publish(
    redis: Arc<Redis>,
    channel: String,
    node: String,
    outgoing: Outgoing,
    mut stop: watch::Receiver<bool>,
) -> u64 {
    let Outgoing {
        mut drops,
        mut events,
    } = outgoing;
    let mut dropped = 0;
    let send = |text: String| {
        let (redis, channel, message) = (
            Arc::clone(&redis),
            channel.clone(),
            format!("{node} {text}"),
        );
        async move {
            if let Err(e) = redis.publish(&channel, &message, PUBLISH_LIMIT).await {
                tracing::debug!(error = %e, "cache bus message not published");
                return false;
            }
            true
        }
    };
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            next = drops.recv() => match next {
                Some(invalidation) => {
                    if !send(invalidation.encode()).await {
                        dropped += 1;
                        metrics::counter!("latchkey_cache_invalidations_dropped_total").increment(1);
                    }
                }
                None => return dropped,
            },
            Some(user) = events.recv() => {
                // Best effort: a lost notice delays the other nodes' streams
                // of this user until their next look (their heartbeat).
                send(format!("{EVENTS_TAG}{}", user.simple())).await;
            }
            _ = heartbeat.tick() => {
                send(HEARTBEAT_TEXT.to_owned()).await;
            }
            _ = stop.changed() => break,
        }
    }
    // Stopping: what the last requests dropped still goes out, briefly.
    let deadline = tokio::time::Instant::now() + DRAIN_LIMIT;
    while let Ok(invalidation) = drops.try_recv() {
        if tokio::time::Instant::now() >= deadline || !send(invalidation.encode()).await {
            dropped += 1;
            metrics::counter!("latchkey_cache_invalidations_dropped_total").increment(1);
        }
    }
    dropped
}

async fn subscribe(
    redis: Arc<Redis>,
    channel: String,
    node: String,
    (cache, live): (AccessCache, LiveEvents),
    mut stop: watch::Receiver<bool>,
) {
    let mut delay = RESUBSCRIBE_DELAY;
    let trouble = LogEvery::new(TROUBLE_INTERVAL);
    loop {
        let mut heard = false;
        let result = redis
            .subscribe(
                &channel,
                CONNECT_LIMIT,
                IDLE_LIMIT,
                stop.clone(),
                |message| {
                    heard = true;
                    let Some((from, text)) = message.split_once(' ') else {
                        return;
                    };
                    if from == node || text == HEARTBEAT_TEXT {
                        return;
                    }
                    if let Some(user) = text.strip_prefix(EVENTS_TAG) {
                        if let Ok(user) = Uuid::try_parse(user) {
                            live.told(user);
                        }
                    } else if let Some(invalidation) = Invalidation::decode(text) {
                        cache.apply(invalidation);
                    }
                },
            )
            .await;
        if let Err(e) = result {
            if let Some(occurrences) = trouble.hit() {
                tracing::warn!(error = %e, occurrences, retry_in_ms = delay.as_millis(), "cache bus subscription lost; subscribing again");
            }
        } else {
            return;
        }
        if heard {
            delay = RESUBSCRIBE_DELAY;
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        delay = (delay * 2).min(MAX_RESUBSCRIBE_DELAY);
    }
}
