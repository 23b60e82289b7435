//! The mail circuit breaker: after a run of temporary failures (the SMTP server is
//! down or unreachable) the worker stops connecting for a cooldown, then lets one
//! probe message through; its outcome closes the breaker or opens it again.
//!
//! Time comes from the caller (the `Clock` port), so the rules are tested without
//! waiting. The breaker is per node: each worker judges its own connection.

use time::{Duration, OffsetDateTime};

/// What the breaker allows right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Closed: send as many messages as are due.
    Send,
    /// Half-open: send exactly one message (the probe) and report its outcome.
    Probe,
    /// Open: connect to nothing until this instant.
    Wait(OffsetDateTime),
}

/// How one delivery attempt went, as far as the breaker cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered (accepted the message, or refused it permanently).
    Reached,
    /// A temporary failure: no connection, timeout, TLS failure or a 4xx reply.
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed { failures: u32 },
    Open { until: OffsetDateTime },
    HalfOpen,
}

/// A circuit breaker over consecutive temporary failures. With `threshold = 0` it
/// never opens.
#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: State,
}

impl Breaker {
    /// A closed breaker that opens after `threshold` consecutive temporary failures
    /// and stays open for `cooldown` each time.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        metrics::gauge!("latchkey_mail_breaker_open").set(0.0);
        Self {
            threshold,
            cooldown,
            state: State::Closed { failures: 0 },
        }
    }

    /// Whether a message may be sent at `now`. An open breaker whose cooldown has
    /// passed turns half-open and answers [`Permit::Probe`] until an outcome is
    /// recorded.
    pub fn permit(&mut self, now: OffsetDateTime) -> Permit {
        match self.state {
            State::Closed { .. } => Permit::Send,
            State::Open { until } if now < until => Permit::Wait(until),
            State::Open { .. } => {
                tracing::info!("mail circuit breaker half-open: sending one probe message");
                self.state = State::HalfOpen;
                Permit::Probe
            }
            State::HalfOpen => Permit::Probe,
        }
    }

    /// Records the outcome of an attempt made at `now`.
    pub fn record(&mut self, outcome: Outcome, now: OffsetDateTime) {
        match (self.state, outcome) {
            (State::Closed { failures }, Outcome::Reached) => {
                if failures > 0 {
                    self.state = State::Closed { failures: 0 };
                }
            }
            (State::Open { .. } | State::HalfOpen, Outcome::Reached) => {
                tracing::info!("mail circuit breaker closed: the SMTP server answers again");
                metrics::gauge!("latchkey_mail_breaker_open").set(0.0);
                self.state = State::Closed { failures: 0 };
            }
            (State::Closed { failures }, Outcome::Failed) => {
                let failures = failures.saturating_add(1);
                if self.threshold > 0 && failures >= self.threshold {
                    self.open(now, failures);
                } else {
                    self.state = State::Closed { failures };
                }
            }
            (State::HalfOpen, Outcome::Failed) => self.open(now, 1),
            // An outcome from before the breaker opened: the cooldown stands.
            (State::Open { .. }, Outcome::Failed) => {}
        }
    }

    /// Whether sending is suspended (open, cooldown not yet over).
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    fn open(&mut self, now: OffsetDateTime, failures: u32) {
        let until = now + self.cooldown;
        tracing::warn!(
            consecutive_failures = failures,
            cooldown_seconds = self.cooldown.whole_seconds(),
            "mail circuit breaker open: the SMTP server keeps failing; queued mail waits"
        );
        metrics::gauge!("latchkey_mail_breaker_open").set(1.0);
        metrics::counter!("latchkey_mail_breaker_opened_total").increment(1);
        self.state = State::Open { until };
    }
}

#[cfg(test)]
mod tests {
    use super::{Breaker, Outcome, Permit};
    use latchkey_core::clock::{Clock, ManualClock};
    use time::macros::datetime;
    use time::Duration;

    fn setup() -> (ManualClock, Breaker) {
        let clock = ManualClock::new(datetime!(2026-11-23 10:00:00 UTC));
        (clock, Breaker::new(3, Duration::seconds(30)))
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let (clock, mut breaker) = setup();
        breaker.record(Outcome::Failed, clock.now());
        breaker.record(Outcome::Failed, clock.now());
        // A success in between resets the run.
        breaker.record(Outcome::Reached, clock.now());
        breaker.record(Outcome::Failed, clock.now());
        breaker.record(Outcome::Failed, clock.now());
        assert_eq!(breaker.permit(clock.now()), Permit::Send);
        breaker.record(Outcome::Failed, clock.now());
        assert!(breaker.is_open());
        let until = clock.now() + Duration::seconds(30);
        assert_eq!(breaker.permit(clock.now()), Permit::Wait(until));
        clock.advance(Duration::seconds(29));
        assert_eq!(breaker.permit(clock.now()), Permit::Wait(until));
    }

    #[test]
    fn a_successful_probe_after_the_cooldown_closes_it() {
        let (clock, mut breaker) = setup();
        for _ in 0..3 {
            breaker.record(Outcome::Failed, clock.now());
        }
        clock.advance(Duration::seconds(30));
        assert_eq!(breaker.permit(clock.now()), Permit::Probe);
        // Until the probe's outcome is known, only the probe goes out.
        assert_eq!(breaker.permit(clock.now()), Permit::Probe);
        breaker.record(Outcome::Reached, clock.now());
        assert!(!breaker.is_open());
        assert_eq!(breaker.permit(clock.now()), Permit::Send);
        // A fresh run of failures is needed to open it again.
        breaker.record(Outcome::Failed, clock.now());
        assert_eq!(breaker.permit(clock.now()), Permit::Send);
    }

    #[test]
    fn a_failed_probe_reopens_it_for_another_cooldown() {
        let (clock, mut breaker) = setup();
        for _ in 0..3 {
            breaker.record(Outcome::Failed, clock.now());
        }
        clock.advance(Duration::seconds(31));
        assert_eq!(breaker.permit(clock.now()), Permit::Probe);
        breaker.record(Outcome::Failed, clock.now());
        assert_eq!(
            breaker.permit(clock.now()),
            Permit::Wait(clock.now() + Duration::seconds(30))
        );
        // A late outcome while open does not extend the cooldown.
        clock.advance(Duration::seconds(10));
        breaker.record(Outcome::Failed, clock.now());
        clock.advance(Duration::seconds(20));
        assert_eq!(breaker.permit(clock.now()), Permit::Probe);
    }

    #[test]
    fn a_permanent_refusal_proves_the_server_reachable() {
        let (clock, mut breaker) = setup();
        for _ in 0..3 {
            breaker.record(Outcome::Failed, clock.now());
        }
        clock.advance(Duration::seconds(30));
        assert_eq!(breaker.permit(clock.now()), Permit::Probe);
        breaker.record(Outcome::Reached, clock.now());
        assert_eq!(breaker.permit(clock.now()), Permit::Send);
    }

    #[test]
    fn threshold_zero_never_opens() {
        let clock = ManualClock::new(datetime!(2026-11-23 10:00:00 UTC));
        let mut breaker = Breaker::new(0, Duration::seconds(30));
        for _ in 0..100 {
            breaker.record(Outcome::Failed, clock.now());
        }
        assert_eq!(breaker.permit(clock.now()), Permit::Send);
    }
}
