//! The Redis connection: one auto-reconnecting multiplexed connection per process,
//! established lazily so that start-up never hangs on a Redis that is down.

use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;

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
    /// The server closed a subscription.
    #[error("redis closed the connection")]
    Closed,
}

/// A handle to Redis, cheap to share (`Arc` it).
pub struct Redis {
    client: redis::Client,
    manager: OnceCell<ConnectionManager>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("connected", &self.manager.initialized())
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Parses the URL; does not connect (the first command does).
    pub fn new(url: &str) -> Result<Self, RedisError> {
        let client = redis::Client::open(url).map_err(RedisError::InvalidUrl)?;
        Ok(Self {
            client,
            manager: OnceCell::new(),
        })
    }

    /// The shared connection, connecting on first use (retried on the next call if it
    /// fails).
    pub async fn connection(&self, limit: Duration) -> Result<ConnectionManager, RedisError> {
        let connect = self
            .manager
            .get_or_try_init(|| async { ConnectionManager::new(self.client.clone()).await });
        match tokio::time::timeout(limit, connect).await {
            Ok(Ok(manager)) => Ok(manager.clone()),
            Ok(Err(e)) => Err(RedisError::Command(e)),
            Err(_) => Err(RedisError::Timeout),
        }
    }

    /// `PING`, answered within `limit` (for `/readyz`).
    pub async fn ping(&self, limit: Duration) -> Result<(), RedisError> {
        let started = tokio::time::Instant::now();
        let mut conn = self.connection(limit).await?;
        let remaining = limit.saturating_sub(started.elapsed());
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        match tokio::time::timeout(remaining, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(RedisError::Command(e)),
            Err(_) => Err(RedisError::Timeout),
        }
    }

    /// `PUBLISH channel message`, answered within `limit`.
    pub async fn publish(
        &self,
        channel: &str,
        message: &str,
        limit: Duration,
    ) -> Result<(), RedisError> {
        let started = tokio::time::Instant::now();
        let mut conn = self.connection(limit).await?;
        let remaining = limit.saturating_sub(started.elapsed());
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(channel).arg(message);
        match tokio::time::timeout(remaining, cmd.query_async::<i64>(&mut conn)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(RedisError::Command(e)),
            Err(_) => Err(RedisError::Timeout),
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
            let mut pubsub = self.client.get_async_pubsub().await?;
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
