//! Rate limiting with GCRA (the generic cell rate algorithm): a quota of
//! `limit` requests per `window` lets a burst of up to `limit` through from an
//! idle start, then admits one request every `window / limit` — smooth, with no
//! burst at a window edge (unlike fixed windows).
//!
//! State per key is one number, the theoretical arrival time (TAT), so a check
//! is one atomic read-modify-write: in process ([`LocalLimiter`]) or in Redis
//! (one Lua script, shared by every node).

use std::sync::Arc;

use async_trait::async_trait;
use time::Duration;

use crate::clock::Clock;

/// `limit` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Requests admitted per window (and the largest burst).
    pub limit: u32,
    /// The window.
    pub window: Duration,
}

impl Quota {
    /// Microseconds between two admitted requests at the sustained rate.
    pub fn emission_micros(&self) -> i64 {
        let window = i64::try_from(self.window.whole_microseconds()).unwrap_or(i64::MAX);
        (window / i64::from(self.limit.max(1))).max(1)
    }

    /// How far ahead of `now` the TAT may run: a burst of `limit`.
    pub fn tolerance_micros(&self) -> i64 {
        self.emission_micros() * i64::from(self.limit.max(1) - 1)
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// The quota's limit.
    pub limit: u32,
    /// Requests still admitted right now.
    pub remaining: u32,
    /// Until the quota is fully available again.
    pub reset_after: Duration,
    /// Until the next request would be admitted (zero when allowed).
    pub retry_after: Duration,
}

/// One GCRA step: the decision and the TAT to store (unchanged when refused).
/// `tat` is `None` for an unknown (idle) key. Times are microseconds.
pub fn gcra(tat: Option<i64>, now: i64, quota: &Quota) -> (Decision, i64) {
    let t = quota.emission_micros();
    let tau = quota.tolerance_micros();
    let mut tat = tat.unwrap_or(now).max(now);
    if tat - now > tau + t {
        // Farther ahead than any sequence of requests can push it: the clock
        // went backwards (NTP step, moved test clock). Start afresh rather
        // than lock the key out until the clock catches up.
        tat = now;
    }
    if tat - now > tau {
        let retry = tat - tau - now;
        return (
            Decision {
                allowed: false,
                limit: quota.limit,
                remaining: 0,
                reset_after: Duration::microseconds(tat - now),
                retry_after: Duration::microseconds(retry),
            },
            tat,
        );
    }
    let new_tat = tat + t;
    let remaining = u32::try_from((tau - (new_tat - now - t)) / t).unwrap_or(0);
    (
        Decision {
            allowed: true,
            limit: quota.limit,
            remaining: remaining.min(quota.limit),
            reset_after: Duration::microseconds(new_tat - now),
            retry_after: Duration::ZERO,
        },
        new_tat,
    )
}

/// Why a limiter could not decide (its backend is down).
#[derive(Debug, thiserror::Error)]
#[error("rate limiter unavailable: {0}")]
pub struct LimiterUnavailable(pub String);

/// Checks and counts one request against `quota` for `key`.
#[async_trait]
pub trait RateLimiter: Send + Sync + std::fmt::Debug {
    /// Counts a request for `key` (when admitted) and says whether it may pass.
    async fn check(&self, key: &str, quota: &Quota) -> Result<Decision, LimiterUnavailable>;
}

/// The in-process limiter: one TAT per key in a bounded map (least recently
/// used keys go first beyond [`LOCAL_CAPACITY`]; idle keys expire).
pub struct LocalLimiter {
    tats: moka::sync::Cache<String, i64>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for LocalLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLimiter")
            .field("keys", &self.tats.entry_count())
            .finish_non_exhaustive()
    }
}

/// Keys remembered at most by the in-process limiter (least recently used go first).
pub const LOCAL_CAPACITY: u64 = 500_000;

impl LocalLimiter {
    /// A limiter reading time from `clock`. A key idle for `longest_window`
    /// (the longest window of any quota it checks) has its whole quota back, so
    /// it is forgotten then.
    pub fn new(clock: Arc<dyn Clock>, longest_window: std::time::Duration) -> Self {
        Self {
            tats: moka::sync::Cache::builder()
                .max_capacity(LOCAL_CAPACITY)
                .time_to_idle(longest_window)
                .build(),
            clock,
        }
    }

    fn now_micros(&self) -> i64 {
        i64::try_from(self.clock.now().unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
    }
}

#[async_trait]
impl RateLimiter for LocalLimiter {
    async fn check(&self, key: &str, quota: &Quota) -> Result<Decision, LimiterUnavailable> {
        let now = self.now_micros();
        let mut decision = None;
        // Atomic per key: concurrent checks of one key never both take the
        // last slot.
        self.tats.entry(key.to_owned()).and_compute_with(|entry| {
            let tat = entry.map(moka::Entry::into_value).filter(|tat| *tat > now);
            let (d, new_tat) = gcra(tat, now, quota);
            decision = Some(d);
            moka::ops::compute::Op::Put(new_tat)
        });
        decision.ok_or_else(|| LimiterUnavailable("no decision".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use time::macros::datetime;

    fn per_minute(limit: u32) -> Quota {
        Quota {
            limit,
            window: Duration::minutes(1),
        }
    }

    #[test]
    fn a_burst_of_the_limit_passes_then_one_per_emission_interval() {
        let q = per_minute(10); // one every 6 s
        let mut tat = None;
        let now = 1_000_000_000;
        for expected_remaining in (0..10).rev() {
            let (d, next) = gcra(tat, now, &q);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected_remaining);
            tat = Some(next);
        }
        let (d, _) = gcra(tat, now, &q);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.retry_after, Duration::seconds(6));
        assert_eq!(d.reset_after, Duration::seconds(60));
        // 5.9 s later: still refused; at 6 s: exactly one more.
        let (d, _) = gcra(tat, now + 5_900_000, &q);
        assert!(!d.allowed);
        let (d, next) = gcra(tat, now + 6_000_000, &q);
        assert!(d.allowed && d.remaining == 0);
        let (d, _) = gcra(Some(next), now + 6_000_000, &q);
        assert!(!d.allowed);
    }

    #[test]
    fn no_burst_at_a_window_edge() {
        // A fixed window would admit 10 at 59.9 s and 10 more at 60.1 s.
        let q = per_minute(10);
        let mut tat = None;
        let start = 0;
        for _ in 0..10 {
            tat = Some(gcra(tat, start + 59_900_000, &q).1);
        }
        let admitted = (0..10)
            .filter(|_| {
                let (d, next) = gcra(tat, start + 60_100_000, &q);
                if d.allowed {
                    tat = Some(next);
                }
                d.allowed
            })
            .count();
        assert_eq!(admitted, 0, "only the sustained rate after a burst");
    }

    #[test]
    fn an_idle_key_recovers_its_whole_quota() {
        let q = per_minute(3);
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(gcra(tat, 0, &q).1);
        }
        let (d, _) = gcra(tat, 60_000_000, &q);
        assert!(d.allowed);
        assert_eq!(d.remaining, 2);
    }

    #[test]
    fn a_clock_stepping_backwards_does_not_lock_a_key_out() {
        let q = per_minute(10);
        let mut tat = None;
        for _ in 0..10 {
            tat = Some(gcra(tat, 600_000_000, &q).1);
        }
        assert!(!gcra(tat, 600_000_000, &q).0.allowed);
        // Five minutes earlier: the stored TAT is impossible, the key starts afresh.
        assert!(gcra(tat, 300_000_000, &q).0.allowed);
    }

    #[tokio::test]
    async fn the_local_limiter_counts_per_key_with_the_injected_clock() {
        let clock = Arc::new(ManualClock::new(datetime!(2026-11-23 10:00:00 UTC)));
        let limiter = LocalLimiter::new(clock.clone(), std::time::Duration::from_mins(1));
        let q = per_minute(2);
        assert!(limiter.check("a", &q).await.unwrap().allowed);
        assert!(limiter.check("a", &q).await.unwrap().allowed);
        let refused = limiter.check("a", &q).await.unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::seconds(30));
        assert!(
            limiter.check("b", &q).await.unwrap().allowed,
            "keys are separate"
        );
        clock.advance(Duration::seconds(30));
        assert!(limiter.check("a", &q).await.unwrap().allowed);
        assert!(!limiter.check("a", &q).await.unwrap().allowed);
    }

    #[tokio::test]
    async fn concurrent_checks_never_exceed_the_quota() {
        let clock = Arc::new(ManualClock::new(datetime!(2026-11-23 10:00:00 UTC)));
        let limiter = Arc::new(LocalLimiter::new(clock, std::time::Duration::from_mins(1)));
        let q = per_minute(25);
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let limiter = Arc::clone(&limiter);
                tokio::spawn(async move { limiter.check("k", &q).await.unwrap().allowed })
            })
            .collect();
        let mut admitted = 0;
        for t in tasks {
            if t.await.unwrap() {
                admitted += 1;
            }
        }
        assert_eq!(admitted, 25);
    }
}
