//! Telling the other nodes what this node's access cache dropped, over Redis
//! pub/sub (when `redis.url` is set): a logout, a revoked session or a changed
//! profile on one node takes effect on every node as soon as the message
//! arrives, instead of within the cache's TTL (5 s). Messages carry the
//! sending node's id, so a node skips its own. Delivery is best effort: a lost
//! message (Redis down, channel full) only falls back on the TTL, and never
//! delays a request.

use std::sync::Arc;
use std::time::Duration;

use latchkey_adapters::redis::Redis;
use latchkey_core::auth::{AccessCache, Invalidation};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

/// Drops waiting to be published; beyond this they are counted and lost.
pub const QUEUE: usize = 4096;
/// Time allowed for one `PUBLISH`.
const PUBLISH_LIMIT: Duration = Duration::from_millis(250);
/// Pause before subscribing again after the subscription failed.
const RESUBSCRIBE_DELAY: Duration = Duration::from_secs(1);

/// The pub/sub channel of the deployment (under `redis.key_prefix`).
pub fn channel(key_prefix: &str) -> String {
    format!("{key_prefix}cache-invalidations")
}

/// Connects `cache` to the other nodes: returns the two tasks (publisher and
/// subscriber), which end when `stop` is set.
pub fn connect(
    cache: &AccessCache,
    redis: Arc<Redis>,
    channel: String,
    stop: watch::Receiver<bool>,
) -> (tokio::task::JoinHandle<()>, tokio::task::JoinHandle<()>) {
    let node = Uuid::new_v4().simple().to_string();
    let (tx, rx) = mpsc::channel(QUEUE);
    cache.share_with(tx);
    let publisher = tokio::spawn(publish(
        Arc::clone(&redis),
        channel.clone(),
        node.clone(),
        rx,
        stop.clone(),
    ));
    let subscriber = tokio::spawn(subscribe(redis, channel, node, cache.clone(), stop));
    (publisher, subscriber)
}

async fn publish(
    redis: Arc<Redis>,
    channel: String,
    node: String,
    mut drops: mpsc::Receiver<Invalidation>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let invalidation = tokio::select! {
            next = drops.recv() => match next {
                Some(invalidation) => invalidation,
                None => return,
            },
            _ = stop.changed() => return,
        };
        let message = format!("{node} {}", invalidation.encode());
        if let Err(e) = redis.publish(&channel, &message, PUBLISH_LIMIT).await {
            metrics::counter!("latchkey_cache_invalidations_dropped_total").increment(1);
            tracing::debug!(error = %e, "cache invalidation not published");
        }
    }
}

async fn subscribe(
    redis: Arc<Redis>,
    channel: String,
    node: String,
    cache: AccessCache,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let result = redis
            .subscribe(&channel, stop.clone(), |message| {
                let Some((from, text)) = message.split_once(' ') else {
                    return;
                };
                if from == node {
                    return;
                }
                if let Some(invalidation) = Invalidation::decode(text) {
                    cache.apply(invalidation);
                }
            })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "cache invalidation subscription lost; resubscribing");
        } else {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(RESUBSCRIBE_DELAY) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}
