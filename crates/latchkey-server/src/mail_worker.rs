//! The outbox worker: delivers queued mail with retries and backoff, never on a
//! request's path. Several workers (one per node) share the queue safely: each
//! message is claimed by lease before it is sent, and a send is only started when
//! it is certain to end (its deadline) well before the lease runs out, so no other
//! node can take the same message while it is in flight. A circuit breaker stops
//! connecting to an SMTP server that keeps failing; messages wait meanwhile.

pub mod breaker;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use latchkey_core::clock::Clock;
use latchkey_core::mail::{MailError, Mailer, OutboxSeal, QueuedMail};
use latchkey_core::ports::Store;
use time::{Duration, OffsetDateTime};
use tokio::sync::watch;

use self::breaker::{Breaker, Outcome, Permit};
use crate::config::MailConfig;
use crate::passes::Passes;

/// Messages claimed per round.
pub const BATCH: u32 = 10;
/// Pause between rounds when nothing was due (or the breaker is open).
pub const IDLE: StdDuration = StdDuration::from_millis(500);
/// Longest time the `latchkey_mail_outbox_pending` gauge goes without a refresh
/// (it is also refreshed after every round that handled mail).
pub const PENDING_REFRESH: StdDuration = StdDuration::from_secs(5);
/// How many send deadlines one claim lasts: one for the send, one of margin for
/// recording the outcome and for clock differences between nodes, one for the
/// rest of the batch.
pub const LEASE_DEADLINES: i32 = 3;

/// How the worker retries, gives up, and protects the SMTP server.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    /// The longest one message may take to send; a send still running then is
    /// abandoned and counts as a temporary failure.
    pub send_deadline: StdDuration,
    /// Delay after the first temporary failure; it doubles with each further one.
    pub retry_base: Duration,
    /// Ceiling of the delay between attempts.
    pub retry_max: Duration,
    /// Attempts before a message that keeps failing temporarily is given up.
    pub max_attempts: i32,
    /// Consecutive temporary failures that open the circuit breaker (0: never).
    pub breaker_failures: u32,
    /// How long the open breaker keeps the worker from connecting.
    pub breaker_cooldown: Duration,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self::from_config(&MailConfig::default())
    }
}

impl OutboxSettings {
    /// The settings of `[mail.outbox]`, with the send deadline of `[mail.smtp]`
    /// (four times `timeout_seconds`).
    pub fn from_config(mail: &MailConfig) -> Self {
        let outbox = &mail.outbox;
        Self {
            send_deadline: mail.smtp.send_deadline(),
            retry_base: Duration::seconds(i64::from(outbox.retry_base_seconds)),
            retry_max: Duration::seconds(i64::from(outbox.retry_max_seconds)),
            max_attempts: i32::try_from(outbox.max_attempts).unwrap_or(i32::MAX),
            breaker_failures: outbox.breaker_failures,
            breaker_cooldown: Duration::seconds(i64::from(outbox.breaker_cooldown_seconds)),
        }
    }

    /// How long a claim reserves a message: [`LEASE_DEADLINES`] send deadlines,
    /// so it always outlasts a send the worker starts (see [`Worker::round`]).
    pub fn lease(&self) -> Duration {
        let deadline = Duration::try_from(self.send_deadline).unwrap_or(Duration::hours(1));
        deadline * LEASE_DEADLINES
    }

    /// Delay before attempt `attempts + 1`: `retry_base` doubling, capped at
    /// `retry_max` (the one backoff rule, [`latchkey_core::retry::Backoff`]).
    pub fn backoff(&self, attempts: i32) -> Duration {
        latchkey_core::retry::Backoff {
            base: self.retry_base,
            max: self.retry_max,
            factor: 2,
        }
        .delay(u32::try_from(attempts).unwrap_or(1))
    }
}

/// One node's outbox worker.
pub struct Worker {
    store: Arc<dyn Store>,
    mailer: Arc<dyn Mailer>,
    seal: Arc<OutboxSeal>,
    clock: Arc<dyn Clock>,
    settings: OutboxSettings,
    breaker: Breaker,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("settings", &self.settings)
            .field("breaker", &self.breaker)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker with a closed circuit breaker, opening the sealed bodies of
    /// queued mail with `seal` just before each send.
    pub fn new(
        store: Arc<dyn Store>,
        mailer: Arc<dyn Mailer>,
        seal: Arc<OutboxSeal>,
        clock: Arc<dyn Clock>,
        settings: OutboxSettings,
    ) -> Self {
        let breaker = Breaker::new(settings.breaker_failures, settings.breaker_cooldown);
        Self {
            store,
            mailer,
            seal,
            clock,
            settings,
            breaker,
        }
    }

    /// Runs rounds until `stop` turns true; refreshes the pending gauge after
    /// each round that handled mail and at least every [`PENDING_REFRESH`].
    /// Each round is reported to `passes` as a pass, finished only when the
    /// round claimed nothing (no mail was due, the circuit breaker is open, or
    /// the outbox could not be read): with a closed breaker and a working
    /// store, a finished pass means every message due when it started has been
    /// attempted and its outcome recorded. After such a round the worker waits
    /// [`IDLE`], or less when [`Passes::run`] asks for a round.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>, passes: Passes) {
        self.refresh_pending().await;
        let mut refreshed = tokio::time::Instant::now();
        loop {
            let pass = passes.start();
            let handled = self.round().await;
            if handled > 0 || refreshed.elapsed() >= PENDING_REFRESH {
                self.refresh_pending().await;
                refreshed = tokio::time::Instant::now();
            }
            if handled == 0 {
                passes.finish(pass);
                tokio::select! {
                    () = tokio::time::sleep(IDLE) => {}
                    () = passes.requested() => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            } else if *stop.borrow() {
                return;
            }
        }
    }

    /// Sets `latchkey_mail_outbox_pending` to the number of messages neither sent
    /// nor given up (one count query).
    pub async fn refresh_pending(&self) {
        match self.store.pending_mail().await {
            #[allow(clippy::cast_precision_loss)] // a gauge; exact below 2^53
            Ok(pending) => metrics::gauge!("latchkey_mail_outbox_pending").set(pending as f64),
            Err(e) => tracing::warn!(error = %e, "mail outbox size unavailable"),
        }
    }

    /// One claim-and-send round; returns how many messages were claimed. While the
    /// breaker is open nothing is claimed and nothing connects; a half-open
    /// breaker claims one probe message. A claimed message is only sent if its
    /// deadline ends at least one deadline before the lease; otherwise (and when
    /// the breaker opens mid-batch) it is handed back unsent.
    pub async fn round(&mut self) -> usize {
        let claimed_at = self.clock.now();
        let limit = match self.breaker.permit(claimed_at) {
            Permit::Wait(_) => return 0,
            Permit::Probe => 1,
            Permit::Send => BATCH,
        };
        let lease = self.settings.lease();
        let claimed = match self.store.claim_mail(claimed_at, lease, limit).await {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "mail outbox unavailable");
                return 0;
            }
        };
        let deadline = lease / LEASE_DEADLINES;
        let latest_start = claimed_at + lease - deadline * 2;
        for mail in &claimed {
            let now = self.clock.now();
            if let Permit::Wait(until) = self.breaker.permit(now) {
                self.hand_back(mail, until, "waiting: the mail circuit breaker is open")
                    .await;
            } else if now > latest_start {
                self.hand_back(mail, now, "waiting: the claim ran short for this message")
                    .await;
            } else {
                self.deliver(mail).await;
            }
        }
        claimed.len()
    }

    /// Sends one claimed message and records the outcome. Outcomes are stamped with the time the attempt started (the retry delay
    /// counts from there); the breaker judges by the time it ended.
    async fn deliver(&mut self, mail: &QueuedMail) {
        let started = self.clock.now();
        let opened = match self.seal.open(mail) {
            Ok(opened) => opened,
            Err(e) => {
                // Sealed under a master key no longer configured (or corrupt):
                // it can never be sent. Nothing was attempted: the breaker
                // does not hear of it.
                metrics::counter!("latchkey_mail_failed_total").increment(1);
                tracing::warn!(mail_id = %mail.id, error = %e, "queued mail cannot be opened; given up");
                let why = format!("the sealed body cannot be opened: {e}");
                if let Err(e) = self.store.mark_mail_failed(mail.id, started, &why).await {
                    tracing::warn!(error = %e, mail_id = %mail.id, "mail outcome not recorded; the lease will expire and retry");
                }
                return;
            }
        };
        let sent =
            tokio::time::timeout(self.settings.send_deadline, self.mailer.send(&opened)).await;
        drop(opened);
        let sent = sent.unwrap_or_else(|_| {
            Err(MailError::Transient(
                "the delivery exceeded its deadline".into(),
            ))
        });
        let ended = self.clock.now();
        let store = &self.store;
        let result = match sent {
            Ok(()) => {
                self.breaker.record(Outcome::Reached, ended);
                metrics::counter!("latchkey_mail_sent_total").increment(1);
                store.mark_mail_sent(mail.id, started).await
            }
            Err(MailError::Permanent(why)) => {
                self.breaker.record(Outcome::Reached, ended);
                metrics::counter!("latchkey_mail_failed_total").increment(1);
                tracing::warn!(mail_id = %mail.id, "mail permanently refused");
                store.mark_mail_failed(mail.id, started, &why).await
            }
            Err(MailError::Transient(why)) => {
                self.breaker.record(Outcome::Failed, ended);
                if mail.attempts >= self.settings.max_attempts {
                    metrics::counter!("latchkey_mail_failed_total").increment(1);
                    tracing::warn!(mail_id = %mail.id, attempts = mail.attempts, "mail given up after retries");
                    store.mark_mail_failed(mail.id, started, &why).await
                } else {
                    metrics::counter!("latchkey_mail_retried_total").increment(1);
                    tracing::info!(mail_id = %mail.id, attempts = mail.attempts, "mail delivery failed; will retry");
                    let next = started + self.settings.backoff(mail.attempts);
                    store.mark_mail_retry(mail.id, next, &why).await
                }
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, mail_id = %mail.id, "mail outcome not recorded; the lease will expire and retry");
        }
    }

    /// Returns a claimed, unsent message to the queue, due at `at`.
    async fn hand_back(&self, mail: &QueuedMail, at: OffsetDateTime, why: &str) {
        if let Err(e) = self.store.mark_mail_retry(mail.id, at, why).await {
            tracing::warn!(error = %e, mail_id = %mail.id, "unsent mail not handed back; the lease will expire");
        }
    }
}

#[cfg(test)]
mod tests;
