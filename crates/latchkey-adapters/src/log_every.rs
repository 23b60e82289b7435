//! Bounded logging of a recurring trouble (a dependency down, accept failing):
//! at most one line per interval, saying how many occurrences it stands for,
//! so an outage under load costs a few lines instead of one per request.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// The interval dependencies' trouble is logged at, at most.
pub const TROUBLE_INTERVAL: Duration = Duration::from_secs(10);

/// Decides which occurrences of one kind of trouble get a log line.
///
/// Guarantees: the first occurrence is logged at once; afterwards at most one
/// line per `interval`, and each logged line reports every occurrence since the
/// previous line (none is lost from the count, only from the log).
#[derive(Debug)]
pub struct LogEvery {
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl State {
    const NEW: Self = Self {
        last_logged: None,
        unlogged: 0,
    };

    fn hit(&mut self, now: Instant, interval: Duration) -> Option<u64> {
        self.unlogged = self.unlogged.saturating_add(1);
        let due = self
            .last_logged
            .is_none_or(|last| now.saturating_duration_since(last) >= interval);
        if !due {
            return None;
        }
        self.last_logged = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

impl LogEvery {
    /// At most one line per `interval`.
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            state: Mutex::new(State::NEW),
        }
    }

    /// Records one occurrence. `Some(n)` when it should be logged now, standing
    /// for `n` occurrences (itself and those not logged since the last line).
    pub fn hit(&self) -> Option<u64> {
        self.hit_at(Instant::now())
    }

    fn hit_at(&self, now: Instant) -> Option<u64> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .hit(now, self.interval)
    }
}

impl Default for LogEvery {
    /// At most one line per [`TROUBLE_INTERVAL`].
    fn default() -> Self {
        Self::new(TROUBLE_INTERVAL)
    }
}

/// A [`LogEvery`] for each of a few kinds of trouble named by static strings
/// (the dependency that failed), so one kind's lines never hide another's.
/// Usable as a `static` where no state reaches (a response being rendered).
#[derive(Debug)]
pub struct LogEveryPerKind {
    interval: Duration,
    kinds: Mutex<Vec<(&'static str, State)>>,
}

impl LogEveryPerKind {
    /// At most one line per `interval` for each kind.
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            kinds: Mutex::new(Vec::new()),
        }
    }

    /// [`LogEvery::hit`] for `kind`.
    pub fn hit(&self, kind: &'static str) -> Option<u64> {
        let now = Instant::now();
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, state)) = kinds.iter_mut().find(|(k, _)| *k == kind) {
            return state.hit(now, self.interval);
        }
        let mut state = State::NEW;
        let logged = state.hit(now, self.interval);
        kinds.push((kind, state));
        logged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_logged_then_one_per_interval_with_the_count() {
        let log = LogEvery::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(log.hit_at(start), Some(1));
        for i in 1..1000 {
            assert_eq!(log.hit_at(start + Duration::from_millis(i)), None);
        }
        // 999 occurrences since the first line, and this one.
        assert_eq!(log.hit_at(start + Duration::from_secs(10)), Some(1000));
        assert_eq!(log.hit_at(start + Duration::from_secs(11)), None);
        assert_eq!(log.hit_at(start + Duration::from_secs(25)), Some(2));
    }

    #[test]
    fn each_kind_has_its_own_interval() {
        let log = LogEveryPerKind::new(Duration::from_hours(1));
        assert_eq!(log.hit("database"), Some(1));
        assert_eq!(log.hit("database"), None);
        assert_eq!(
            log.hit("redis"),
            Some(1),
            "not hidden by the database's lines"
        );
        assert_eq!(log.hit("redis"), None);
        assert_eq!(log.hit("database"), None);
    }

    #[test]
    fn concurrent_hits_are_all_counted_and_logged_once() {
        let log = std::sync::Arc::new(LogEvery::new(Duration::from_hours(1)));
        let logged: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let log = std::sync::Arc::clone(&log);
                    s.spawn(move || (0..1000).filter_map(|_| log.hit()).count() as u64)
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(
            logged, 1,
            "one line for 8000 occurrences within the interval"
        );
        let state = log.state.lock().unwrap();
        assert_eq!(state.unlogged, 7999, "the others wait to be reported");
    }
}
