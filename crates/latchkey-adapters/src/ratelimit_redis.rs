//! The shared rate limiter: GCRA in one Lua script per check, so every node
//! using the same Redis draws from one budget, atomically, on Redis's clock.
//!
//! Guarantees: one round trip per check; keys expire when their quota is whole
//! again; a Redis that fails or is slow (over [`CALL_TIMEOUT`]) opens a circuit
//! breaker for [`BREAKER_OPEN`], during which checks fail at once without
//! touching Redis (the caller applies its fail-open/closed policy).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use latchkey_core::ratelimit::{Decision, LimiterUnavailable, Quota, RateLimiter};

use crate::redis::Redis;

/// Longest wait for one check.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// How long checks skip Redis after a failure.
pub const BREAKER_OPEN: Duration = Duration::from_secs(5);

/// GCRA on Redis time. ARGV: emission interval, tolerance (µs). Returns
/// {allowed, reset_after µs, retry_after µs, tat - now after the step µs}.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > tau + emission then tat = now end
if tat - now > tau then
  return {0, tat - now, tat - tau - now}
end
local new_tat = tat + emission
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, new_tat - now, 0}
";

/// See the module documentation.
pub struct RedisLimiter {
    redis: Arc<Redis>,
    prefix: String,
    script: redis::Script,
    started: Instant,
    /// Milliseconds since `started` until which the breaker is open (0: closed).
    open_until_ms: AtomicU64,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// A limiter writing keys `<prefix>rl:<key>`.
    pub fn new(redis: Arc<Redis>, prefix: &str) -> Self {
        Self {
            redis,
            prefix: format!("{prefix}rl:"),
            script: redis::Script::new(SCRIPT),
            started: Instant::now(),
            open_until_ms: AtomicU64::new(0),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn trip(&self) {
        let until = self.elapsed_ms() + u64::try_from(BREAKER_OPEN.as_millis()).unwrap_or(u64::MAX);
        self.open_until_ms.store(until, Ordering::Relaxed);
    }

    async fn call(&self, key: &str, quota: &Quota) -> Result<(i64, i64, i64), String> {
        let mut conn = self
            .redis
            .connection(CALL_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        let mut invocation = self.script.key(format!("{}{key}", self.prefix));
        invocation
            .arg(quota.emission_micros())
            .arg(quota.tolerance_micros());
        let run = invocation.invoke_async::<(i64, i64, i64)>(&mut conn);
        match tokio::time::timeout(CALL_TIMEOUT, run).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(format!("script failed: {:?}", e.kind())),
            Err(_) => Err("timed out".into()),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn check(&self, key: &str, quota: &Quota) -> Result<Decision, LimiterUnavailable> {
        if self.elapsed_ms() < self.open_until_ms.load(Ordering::Relaxed) {
            return Err(LimiterUnavailable(
                "circuit open after a Redis failure".into(),
            ));
        }
        let (allowed, reset_after, retry_after) = match self.call(key, quota).await {
            Ok(v) => v,
            Err(why) => {
                self.trip();
                return Err(LimiterUnavailable(why));
            }
        };
        let t = quota.emission_micros();
        let tau = quota.tolerance_micros();
        let remaining = if allowed == 1 {
            u32::try_from((tau - (reset_after - t)) / t).unwrap_or(0)
        } else {
            0
        };
        Ok(Decision {
            allowed: allowed == 1,
            limit: quota.limit,
            remaining: remaining.min(quota.limit),
            reset_after: time::Duration::microseconds(reset_after),
            retry_after: time::Duration::microseconds(retry_after),
        })
    }
}
