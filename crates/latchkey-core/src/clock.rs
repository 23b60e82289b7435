//! The one place that reads the wall clock.
//!
//! Every other module receives time through [`Clock`], so tests can move time and
//! no rule depends on when the test machine happens to run it. `clippy.toml` bans
//! `OffsetDateTime::now_utc` and `SystemTime::now` everywhere else.

use std::sync::{Arc, Mutex, PoisonError};
use time::{Duration, OffsetDateTime};

/// A source of the current time, truncated to whole microseconds so that a value
/// read back from either database compares equal to the value written.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant in UTC, with microsecond precision.
    fn now(&self) -> OffsetDateTime;

    /// Waits `delay` before work that is deliberately deferred (a failed
    /// sign-in's bookkeeping lets the answer leave first). The system clock
    /// really waits; a [`ManualClock`], whose time only moves when told, does
    /// not, so tests that drive time never wait on the wall clock.
    fn pause(&self, delay: std::time::Duration) -> Pause {
        Box::pin(tokio::time::sleep(delay))
    }
}

/// The future [`Clock::pause`] returns.
pub type Pause = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;

/// Truncates a timestamp to whole microseconds (the precision both stores keep).
pub fn truncate_to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let micros = t.microsecond();
    t.replace_microsecond(micros).unwrap_or(t)
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the single sanctioned wall-clock read
    fn now(&self) -> OffsetDateTime {
        truncate_to_micros(OffsetDateTime::now_utc())
    }
}

/// A clock that only moves when told to; shared between clones (for tests and tools).
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<OffsetDateTime>>,
}

impl ManualClock {
    /// A clock stopped at `start` (truncated to microseconds).
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(truncate_to_micros(start))),
        }
    }

    /// Moves the clock forward (or backward, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now = truncate_to_micros(*now + by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns at once: this clock's time does not pass by itself.
    fn pause(&self, _delay: std::time::Duration) -> Pause {
        Box::pin(std::future::ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[tokio::test(start_paused = true)]
    async fn the_system_clock_pauses_and_a_manual_clock_does_not() {
        let delay = std::time::Duration::from_hours(1);
        let started = tokio::time::Instant::now();
        SystemClock.pause(delay).await;
        assert!(
            started.elapsed() >= delay,
            "the system clock waits (tokio time)"
        );
        let manual = ManualClock::new(datetime!(2026-01-01 00:00 UTC));
        let before = tokio::time::Instant::now();
        manual.pause(delay).await;
        assert_eq!(before.elapsed(), std::time::Duration::ZERO);
        assert_eq!(
            manual.now(),
            datetime!(2026-01-01 00:00 UTC),
            "time did not move"
        );
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(datetime!(2026-01-01 00:00:00.123_456_789 UTC));
        assert_eq!(clock.now(), datetime!(2026-01-01 00:00:00.123_456 UTC));
        let other = clock.clone();
        other.advance(Duration::minutes(5));
        assert_eq!(clock.now(), datetime!(2026-01-01 00:05:00.123_456 UTC));
    }

    #[test]
    fn system_clock_has_microsecond_precision() {
        let now = SystemClock.now();
        assert_eq!(now.nanosecond() % 1_000, 0);
        assert_eq!(now.offset(), time::UtcOffset::UTC);
    }
}
