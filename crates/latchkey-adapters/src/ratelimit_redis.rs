//! The shared rate limiter: GCRA in one Lua script per check, so every node
//! using the same Redis draws from one budget, atomically, on Redis's clock.
//!
//! Guarantees: one round trip per check; keys expire when their quota is whole
//! again; a Redis that fails or is slow (over [`CALL_TIMEOUT`]) opens a circuit
//! breaker for [`BREAKER_OPEN`], during which checks fail at once without
//! touching Redis (the caller applies its fail-open/closed policy); then one
//! check at a time probes Redis (on a fresh connection: the failed one was
//! discarded by [`Redis`]), and the first that succeeds closes the breaker.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use latchkey_core::ratelimit::{Decision, LimiterUnavailable, Quota, RateLimiter};

use crate::redis::Redis;

/// Longest wait for one check.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(250);
/// How long checks skip Redis after a failure, before the next probe.
pub const BREAKER_OPEN: Duration = Duration::from_secs(1);

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

/// Why one check's script call failed. Its text is what the check's
/// [`LimiterUnavailable`] carries.
#[derive(Debug, thiserror::Error)]
enum CallError {
    /// Redis answered the script (or the connection for it) with an error:
    /// only its kind is told, not the server's message.
    #[error("script failed: {0:?}")]
    Script(redis::ErrorKind),
    /// Redis was not reached or did not answer in time.
    #[error(transparent)]
    Unavailable(crate::redis::RedisError),
}

impl From<crate::redis::RedisError> for CallError {
    fn from(e: crate::redis::RedisError) -> Self {
        match e {
            crate::redis::RedisError::Command(e) => Self::Script(e.kind()),
            other => Self::Unavailable(other),
        }
    }
}

/// See the module documentation.
pub struct RedisLimiter {
    redis: Arc<Redis>,
    prefix: String,
    script: redis::Script,
    started: Instant,
    breaker: Breaker,
}

/// Whether a check may call Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// Closed breaker: call.
    Call,
    /// The open period is over and no other probe runs: call, as the probe.
    Probe,
    /// Open (or another check is probing): fail without calling.
    Skip,
}

/// The circuit breaker, on milliseconds since the limiter started.
#[derive(Debug, Default)]
struct Breaker {
    /// Until when it is open (0: closed).
    open_until_ms: AtomicU64,
    /// A probe is in flight.
    probing: AtomicBool,
}

impl Breaker {
    fn admit(&self, now_ms: u64) -> Admission {
        let until = self.open_until_ms.load(Ordering::Acquire);
        if until == 0 {
            return Admission::Call;
        }
        if now_ms < until {
            return Admission::Skip;
        }
        match self
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Admission::Probe,
            Err(_) => Admission::Skip,
        }
    }

    fn succeeded(&self, admission: Admission) {
        self.open_until_ms.store(0, Ordering::Release);
        if admission == Admission::Probe {
            self.probing.store(false, Ordering::Release);
        }
    }

    fn failed(&self, admission: Admission, now_ms: u64) {
        let open = u64::try_from(BREAKER_OPEN.as_millis()).unwrap_or(u64::MAX);
        // Never 0 (which means closed), even in the first millisecond.
        let until = now_ms.saturating_add(open).max(1);
        self.open_until_ms.store(until, Ordering::Release);
        if admission == Admission::Probe {
            self.probing.store(false, Ordering::Release);
        }
    }
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
            breaker: Breaker::default(),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn call(&self, key: &str, quota: &Quota) -> Result<(i64, i64, i64), CallError> {
        let mut invocation = self.script.key(format!("{}{key}", self.prefix));
        invocation
            .arg(quota.emission_micros())
            .arg(quota.tolerance_micros());
        Ok(self.redis.invoke(&invocation, CALL_TIMEOUT).await?)
    }
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn check(&self, key: &str, quota: &Quota) -> Result<Decision, LimiterUnavailable> {
        let admission = self.breaker.admit(self.elapsed_ms());
        if admission == Admission::Skip {
            return Err(LimiterUnavailable(
                "circuit open after a Redis failure".into(),
            ));
        }
        let (allowed, reset_after, retry_after) = match self.call(key, quota).await {
            Ok(v) => {
                self.breaker.succeeded(admission);
                v
            }
            Err(why) => {
                self.breaker.failed(admission, self.elapsed_ms());
                return Err(LimiterUnavailable(why.to_string()));
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

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN_MS: u64 = 1000;

    #[test]
    fn open_ms_is_the_breaker_period() {
        assert_eq!(Duration::from_millis(OPEN_MS), BREAKER_OPEN);
    }

    #[test]
    fn a_failure_opens_the_breaker_then_one_probe_at_a_time() {
        let breaker = Breaker::default();
        assert_eq!(breaker.admit(0), Admission::Call);
        breaker.failed(Admission::Call, 0);
        assert_eq!(breaker.admit(1), Admission::Skip);
        assert_eq!(breaker.admit(OPEN_MS - 1), Admission::Skip);
        // Open period over: exactly one probe, the others still skip.
        assert_eq!(breaker.admit(OPEN_MS), Admission::Probe);
        for _ in 0..100 {
            assert_eq!(breaker.admit(OPEN_MS + 5), Admission::Skip);
        }
        // The probe fails: open again for a whole period.
        breaker.failed(Admission::Probe, OPEN_MS + 10);
        assert_eq!(breaker.admit(2 * OPEN_MS), Admission::Skip);
        assert_eq!(breaker.admit(2 * OPEN_MS + 10), Admission::Probe);
        // The probe succeeds: closed, every check calls again.
        breaker.succeeded(Admission::Probe);
        for _ in 0..10 {
            assert_eq!(breaker.admit(2 * OPEN_MS + 11), Admission::Call);
        }
    }

    #[test]
    fn concurrent_checks_after_the_open_period_send_a_single_probe() {
        let breaker = Arc::new(Breaker::default());
        breaker.failed(Admission::Call, 0);
        let probes = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let breaker = Arc::clone(&breaker);
                    s.spawn(move || {
                        (0..1000)
                            .filter(|_| breaker.admit(OPEN_MS) == Admission::Probe)
                            .count()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .sum::<usize>()
        });
        assert_eq!(probes, 1);
    }

    #[test]
    fn a_failed_call_says_what_failed_and_no_more() {
        let refused = redis::RedisError::from((redis::ErrorKind::ResponseError, "ERR secret"));
        let script = CallError::from(crate::redis::RedisError::Command(refused));
        assert!(matches!(script, CallError::Script(_)), "{script:?}");
        assert_eq!(script.to_string(), "script failed: ResponseError");
        let late = CallError::from(crate::redis::RedisError::Timeout);
        assert_eq!(late.to_string(), "redis did not answer in time");
        let down = CallError::from(crate::redis::RedisError::Unreachable);
        assert_eq!(down.to_string(), "redis is unreachable (reconnecting)");
    }

    #[tokio::test]
    async fn an_unreachable_redis_trips_the_breaker_and_checks_then_skip_it() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let redis = Arc::new(Redis::new(&format!("redis://127.0.0.1:{port}")).unwrap());
        let limiter = RedisLimiter::new(redis, "t:");
        let quota = Quota {
            limit: 5,
            window: time::Duration::minutes(1),
        };
        let first = limiter.check("k", &quota).await.unwrap_err();
        assert!(!first.0.contains("circuit open"), "{first}");
        let next = limiter.check("k", &quota).await.unwrap_err();
        assert!(next.0.contains("circuit open"), "{next}");
    }
}
