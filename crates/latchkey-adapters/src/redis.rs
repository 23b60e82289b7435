//! The Redis connection: one multiplexed connection per process, established
//! lazily so that start-up never hangs on a Redis that is down, and replaced by
//! this module when it fails (redis-rs' `ConnectionManager` can stay stuck on a
//! dead connection after some failures, redis-rs issue 984).
//!
//! Guarantees:
//! - a command that fails on the connection itself (I/O error, dropped
//!   connection, no answer in time) discards that connection; the next command
//!   connects afresh;
//! - at most one connection attempt runs at a time, however many callers wait;
//!   a failed attempt is followed by a pause ([`FIRST_RETRY_DELAY`], doubling up
//!   to [`MAX_RETRY_DELAY`]) during which callers fail at once, so an outage
//!   neither piles up waiters nor hammers Redis, and a Redis that is back is
//!   used again within [`MAX_RETRY_DELAY`] of the next command;
//! - trouble is logged at most once per [`TROUBLE_INTERVAL`] with a count,
//!   never once per command, and the return of Redis once.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::log_every::{LogEvery, TROUBLE_INTERVAL};

/// Longest wait for one connection attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause after a first failed connection attempt; doubles on each further one.
pub const FIRST_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Longest pause between two connection attempts.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Why a Redis call failed. Callers treat every variant as "Redis unavailable".
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The URL is not a valid Redis URL.
    #[error("invalid redis url")]
    InvalidUrl(#[source] redis::RedisError),
    /// Connecting or the command failed.
    #[error("redis command failed")]
    Command(#[source] redis::RedisError),
    /// No answer within the time limit.
    #[error("redis did not answer in time")]
    Timeout,
    /// The last connection attempt failed; the next one waits for its pause.
    #[error("redis is unreachable (reconnecting)")]
    Unreachable,
    /// The server closed a subscription.
    #[error("redis closed the connection")]
    Closed,
}

/// A handle to Redis, cheap to share (`Arc` it).
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    /// `host:port` (never the password), for logs.
    address: String,
    link: Mutex<Link>,
    /// Bumped when a connection attempt ends, successful or not.
    attempts: watch::Sender<u64>,
    /// The first and the longest pause between attempts.
    retry_delays: (Duration, Duration),
    trouble: LogEvery,
}

/// The connection and the state of reconnecting. Never locked across an await.
#[derive(Default)]
struct Link {
    connection: Option<(u64, MultiplexedConnection)>,
    /// Generation of the latest connection (tells a stale failure report from
    /// one about the current connection).
    generation: u64,
    connecting: bool,
    failed_attempts: u32,
    retry_at: Option<Instant>,
}

enum Next {
    Ready(u64, MultiplexedConnection),
    Wait,
    Unreachable,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let connected = self.inner.link().connection.is_some();
        f.debug_struct("Redis")
            .field("address", &self.inner.address)
            .field("connected", &connected)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Parses the URL; does not connect (the first command does).
    pub fn new(url: &str) -> Result<Self, RedisError> {
        Self::with_retry_delays(url, FIRST_RETRY_DELAY, MAX_RETRY_DELAY)
    }

    fn with_retry_delays(url: &str, first: Duration, max: Duration) -> Result<Self, RedisError> {
        let client = redis::Client::open(url).map_err(RedisError::InvalidUrl)?;
        let address = client.get_connection_info().addr.to_string();
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                address,
                link: Mutex::new(Link::default()),
                attempts: watch::channel(0).0,
                retry_delays: (first, max),
                trouble: LogEvery::new(TROUBLE_INTERVAL),
            }),
        })
    }

    /// `PING`, answered within `limit` (for `/readyz`).
    pub async fn ping(&self, limit: Duration) -> Result<(), RedisError> {
        let cmd = redis::cmd("PING");
        self.run(limit, |mut conn| async move {
            cmd.query_async::<String>(&mut conn).await.map(drop)
        })
        .await
    }

    /// `PUBLISH channel message`, answered within `limit`.
    pub async fn publish(
        &self,
        channel: &str,
        message: &str,
        limit: Duration,
    ) -> Result<(), RedisError> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(channel).arg(message);
        self.run(limit, |mut conn| async move {
            cmd.query_async::<i64>(&mut conn).await.map(drop)
        })
        .await
    }

    /// `XADD key MAXLEN ~ maxlen * field value ...`, answered within `limit`;
    /// returns the entry's id.
    pub async fn xadd(
        &self,
        key: &str,
        maxlen: u64,
        fields: &[(&str, String)],
        limit: Duration,
    ) -> Result<String, RedisError> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(key).arg("MAXLEN").arg("~").arg(maxlen).arg("*");
        for (field, value) in fields {
            cmd.arg(*field).arg(value);
        }
        self.run(limit, |mut conn| async move {
            cmd.query_async::<String>(&mut conn).await
        })
        .await
    }

    /// Runs a Lua script (loading it first if Redis does not know it), answered
    /// within `limit`.
    pub async fn invoke<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
        limit: Duration,
    ) -> Result<T, RedisError> {
        self.run(limit, |mut conn| async move {
            invocation.invoke_async::<T>(&mut conn).await
        })
        .await
    }

    /// Runs `call` on the shared connection within `limit` (connecting when
    /// there is none); discards the connection when the failure is its own.
    async fn run<T, F>(
        &self,
        limit: Duration,
        call: impl FnOnce(MultiplexedConnection) -> F,
    ) -> Result<T, RedisError>
    where
        F: Future<Output = redis::RedisResult<T>>,
    {
        let deadline = Instant::now() + limit;
        let (generation, conn) = self.connection(deadline).await?;
        match tokio::time::timeout_at(deadline, call(conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if breaks_connection(&e) {
                    self.inner.discard(generation, &e.to_string());
                }
                Err(RedisError::Command(e))
            }
            Err(_) => {
                // A connection that stopped answering (issue 984's stuck
                // connection, a silent network partition): never reused.
                self.inner.discard(generation, "no answer in time");
                Err(RedisError::Timeout)
            }
        }
    }

    /// The shared connection, waiting until `deadline` for the one attempt in
    /// flight (starting it when due). Fails at once while the pause after a
    /// failed attempt runs, and when the attempt waited for failed.
    async fn connection(
        &self,
        deadline: Instant,
    ) -> Result<(u64, MultiplexedConnection), RedisError> {
        // Subscribed before looking, so an attempt ending in between is seen.
        let mut attempts = self.inner.attempts.subscribe();
        let mut may_start = true;
        loop {
            match self.inner.next(Instant::now(), may_start) {
                Next::Ready(generation, conn) => return Ok((generation, conn)),
                Next::Unreachable => return Err(RedisError::Unreachable),
                Next::Wait => {}
            }
            match tokio::time::timeout_at(deadline, attempts.changed()).await {
                Ok(Ok(())) => may_start = false,
                // The sender lives in `inner`, which outlives this borrow.
                Ok(Err(_)) => return Err(RedisError::Unreachable),
                Err(_) => return Err(RedisError::Timeout),
            }
        }
    }

    /// Subscribes to `channel` on a connection of its own (connected within
    /// `connect_limit`) and hands every text message to `on_message` until the
    /// connection fails, or no message at all arrives for `idle_limit` (a
    /// connection that died silently: the caller publishes heartbeats), which
    /// returns an error for the caller to resubscribe; or until `stop` is set
    /// (`Ok`).
    pub async fn subscribe(
        &self,
        channel: &str,
        connect_limit: Duration,
        idle_limit: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
        mut on_message: impl FnMut(String) + Send,
    ) -> Result<(), RedisError> {
        use futures::StreamExt as _;
        let connect = async {
            let mut pubsub = self.inner.client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        // Connecting may hang on an unreachable host: bounded, and stopping
        // must not wait for it.
        let mut pubsub = tokio::select! {
            connected = tokio::time::timeout(connect_limit, connect) => match connected {
                Ok(connected) => connected.map_err(RedisError::Command)?,
                Err(_) => return Err(RedisError::Timeout),
            },
            _ = stop.changed() => return Ok(()),
        };
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                message = tokio::time::timeout(idle_limit, messages.next()) => match message {
                    Ok(Some(message)) => {
                        if let Ok(text) = message.get_payload::<String>() {
                            on_message(text);
                        }
                    }
                    Ok(None) => return Err(RedisError::Closed),
                    Err(_) => return Err(RedisError::Timeout),
                },
                _ = stop.changed() => return Ok(()),
            }
        }
    }
}

impl Inner {
    fn link(&self) -> std::sync::MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What a caller does now: use the connection, wait for the attempt in
    /// flight, start one (when `may_start`, none runs and no pause is due), or
    /// give up.
    fn next(self: &Arc<Self>, now: Instant, may_start: bool) -> Next {
        let mut link = self.link();
        if let Some((generation, conn)) = &link.connection {
            return Next::Ready(*generation, conn.clone());
        }
        if link.connecting {
            return Next::Wait;
        }
        if !may_start || link.retry_at.is_some_and(|at| now < at) {
            return Next::Unreachable;
        }
        link.connecting = true;
        drop(link);
        // Its own task: a caller giving up (its deadline, a dropped request)
        // never cancels the attempt the others wait for.
        tokio::spawn(Arc::clone(self).connect());
        Next::Wait
    }

    /// One connection attempt, bounded by [`CONNECT_TIMEOUT`].
    async fn connect(self: Arc<Self>) {
        let config = redis::AsyncConnectionConfig::new().set_connection_timeout(CONNECT_TIMEOUT);
        let attempt = tokio::time::timeout(
            CONNECT_TIMEOUT,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await;
        let outcome = match attempt {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("connection attempt timed out".to_owned()),
        };
        {
            let mut link = self.link();
            link.connecting = false;
            match outcome {
                Ok(conn) => {
                    link.generation += 1;
                    link.connection = Some((link.generation, conn));
                    if link.failed_attempts > 0 {
                        tracing::info!(
                            redis = %self.address,
                            failed_attempts = link.failed_attempts,
                            "redis reachable again"
                        );
                    }
                    link.failed_attempts = 0;
                    link.retry_at = None;
                }
                Err(why) => {
                    link.failed_attempts = link.failed_attempts.saturating_add(1);
                    let pause = retry_delay(self.retry_delays, link.failed_attempts);
                    link.retry_at = Some(Instant::now() + pause);
                    if let Some(occurrences) = self.trouble.hit() {
                        tracing::warn!(
                            redis = %self.address,
                            error = %why,
                            failed_attempts = link.failed_attempts,
                            occurrences,
                            retry_in_ms = pause.as_millis(),
                            "redis unreachable; reconnecting"
                        );
                    }
                }
            }
        }
        self.attempts.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Drops the connection of `generation` (if it is still the current one),
    /// so the next command connects afresh.
    fn discard(&self, generation: u64, why: &str) {
        let mut link = self.link();
        if link
            .connection
            .as_ref()
            .is_some_and(|(current, _)| *current == generation)
        {
            link.connection = None;
            drop(link);
            if let Some(occurrences) = self.trouble.hit() {
                tracing::warn!(
                    redis = %self.address,
                    error = why,
                    occurrences,
                    "redis connection failed; replacing it"
                );
            }
        }
    }
}

/// The pause after `failed` consecutive failed attempts: `first`, doubling
/// up to `max`.
fn retry_delay((first, max): (Duration, Duration), failed: u32) -> Duration {
    let doublings = failed.saturating_sub(1).min(16);
    first.saturating_mul(1 << doublings).min(max)
}

/// Whether `e` says the connection itself is unusable (as opposed to an error
/// reply from a working server, such as a script error).
fn breaks_connection(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn retry_delays_double_up_to_the_maximum() {
        let delays = (FIRST_RETRY_DELAY, MAX_RETRY_DELAY);
        assert_eq!(retry_delay(delays, 1), FIRST_RETRY_DELAY);
        assert_eq!(retry_delay(delays, 2), FIRST_RETRY_DELAY * 2);
        assert_eq!(retry_delay(delays, 3), FIRST_RETRY_DELAY * 4);
        assert_eq!(retry_delay(delays, 50), MAX_RETRY_DELAY);
        assert_eq!(retry_delay(delays, u32::MAX), MAX_RETRY_DELAY);
    }

    /// A TCP server that accepts and at once closes every connection (a Redis
    /// that fails every handshake), counting connections.
    async fn slamming_server() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        (format!("redis://127.0.0.1:{port}"), accepted)
    }

    #[tokio::test]
    async fn a_storm_of_callers_makes_one_connection_attempt_then_fails_fast() {
        let (url, accepted) = slamming_server().await;
        let hour = Duration::from_hours(1);
        let redis = Arc::new(Redis::with_retry_delays(&url, hour, hour).unwrap());
        let calls: Vec<_> = (0..200)
            .map(|_| {
                let redis = Arc::clone(&redis);
                tokio::spawn(async move { redis.ping(Duration::from_secs(5)).await })
            })
            .collect();
        for call in calls {
            assert!(call.await.unwrap().is_err());
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one attempt for 200 callers"
        );
        // During the pause: no new attempt, an answer without waiting.
        for _ in 0..50 {
            assert!(matches!(
                redis.ping(Duration::from_secs(5)).await,
                Err(RedisError::Unreachable)
            ));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn after_the_pause_the_next_command_tries_again() {
        let (url, accepted) = slamming_server().await;
        let ms = Duration::from_millis(1);
        let redis = Redis::with_retry_delays(&url, ms, ms).unwrap();
        for attempt in 1..=3 {
            assert!(redis.ping(Duration::from_secs(5)).await.is_err());
            assert_eq!(accepted.load(Ordering::SeqCst), attempt);
            tokio::time::sleep(ms * 5).await;
        }
    }

    #[tokio::test]
    async fn a_caller_giving_up_does_not_cancel_the_attempt_the_others_wait_for() {
        // A server that accepts and never answers: the handshake hangs.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        let held = tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                kept.push(stream);
            }
        });
        let redis = Redis::new(&format!("redis://127.0.0.1:{port}")).unwrap();
        for _ in 0..3 {
            assert!(matches!(
                redis.ping(Duration::from_millis(50)).await,
                Err(RedisError::Timeout)
            ));
        }
        assert!(redis.inner.link().connecting, "the attempt still runs");
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "and it is the only one");
        held.abort();
    }
}
