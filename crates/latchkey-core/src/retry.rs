//! The one rule for how long to wait before trying something again that
//! failed (queued mail, webhook deliveries): growing by a factor from a base,
//! capped, optionally spread by jitter so many failures at once do not all
//! come back at the same instant.

use rand::Rng;
use time::Duration;

/// A backoff schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Each further delay is the last times this (at least 1).
    pub factor: u32,
}

impl Backoff {
    /// The delay after the `failures`-th failure in a row (1 for the first):
    /// `base · factor^(failures-1)`, at most `max`.
    pub fn delay(&self, failures: u32) -> Duration {
        let mut delay = self.base;
        for _ in 1..failures.max(1) {
            delay = delay
                .checked_mul(i32::try_from(self.factor.max(1)).unwrap_or(i32::MAX))
                .unwrap_or(self.max);
            if delay >= self.max {
                return self.max;
            }
        }
        delay.min(self.max)
    }

    /// [`Self::delay`] spread uniformly by ±20 %.
    pub fn jittered(&self, failures: u32) -> Duration {
        let delay = self.delay(failures);
        let spread = rand::rngs::OsRng.gen_range(0.8..=1.2);
        Duration::seconds_f64(delay.as_seconds_f64() * spread)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_by_the_factor_and_stop_at_the_cap() {
        let b = Backoff {
            base: Duration::seconds(90),
            max: Duration::hours(12),
            factor: 3,
        };
        let delays: Vec<i64> = (1..=8).map(|n| b.delay(n).whole_seconds()).collect();
        assert_eq!(delays, [90, 270, 810, 2430, 7290, 21870, 43200, 43200]);
        assert_eq!(b.delay(0), b.delay(1));
        assert_eq!(b.delay(u32::MAX), Duration::hours(12));
        for n in 1..=8 {
            let j = b.jittered(n).as_seconds_f64();
            let d = b.delay(n).as_seconds_f64();
            assert!(
                j >= d * 0.8 - 1e-6 && j <= d * 1.2 + 1e-6,
                "{n}: {j} vs {d}"
            );
        }
    }

    #[test]
    fn doubling_is_the_mail_schedule() {
        let b = Backoff {
            base: Duration::seconds(30),
            max: Duration::minutes(10),
            factor: 2,
        };
        let delays: Vec<i64> = (1..=7).map(|n| b.delay(n).whole_seconds()).collect();
        assert_eq!(delays, [30, 60, 120, 240, 480, 600, 600]);
    }
}
