//! The outbox worker: delivers queued mail with retries and backoff, never on a
//! request's path. Several workers (one per node) share the queue safely: each
//! message is claimed by lease before it is sent.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use latchkey_core::clock::Clock;
use latchkey_core::mail::{MailError, Mailer};
use latchkey_core::ports::Store;
use time::Duration;
use tokio::sync::watch;

/// How long a claimed message is reserved for one delivery attempt.
pub const LEASE: Duration = Duration::minutes(2);
/// Messages claimed per round.
pub const BATCH: u32 = 10;
/// Attempts before a message that keeps failing temporarily is given up.
pub const MAX_ATTEMPTS: i32 = 12;
/// Pause between rounds when the queue is empty.
pub const IDLE: StdDuration = StdDuration::from_millis(500);

/// Delay before attempt `attempts + 1`: 10 s doubling, capped at one hour.
pub fn backoff(attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    Duration::seconds(10i64.saturating_mul(1i64 << exp.min(12))).min(Duration::hours(1))
}

/// Runs until `stop` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    mailer: Arc<dyn Mailer>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let delivered = round(&*store, &*mailer, &*clock).await;
        if delivered == 0 {
            tokio::select! {
                () = tokio::time::sleep(IDLE) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        } else if *stop.borrow() {
            return;
        }
    }
}

/// One claim-and-send round; returns how many messages were attempted.
pub async fn round(store: &dyn Store, mailer: &dyn Mailer, clock: &dyn Clock) -> usize {
    let claimed = match store.claim_mail(clock.now(), LEASE, BATCH).await {
        Ok(claimed) => claimed,
        Err(e) => {
            tracing::warn!(error = %e, "mail outbox unavailable");
            return 0;
        }
    };
    for mail in &claimed {
        let now = clock.now();
        let result = match mailer.send(mail).await {
            Ok(()) => {
                metrics::counter!("latchkey_mail_sent_total").increment(1);
                store.mark_mail_sent(mail.id, now).await
            }
            Err(MailError::Permanent(why)) => {
                metrics::counter!("latchkey_mail_failed_total").increment(1);
                tracing::warn!(mail_id = %mail.id, "mail permanently refused");
                store.mark_mail_failed(mail.id, now, &why).await
            }
            Err(MailError::Transient(why)) if mail.attempts >= MAX_ATTEMPTS => {
                metrics::counter!("latchkey_mail_failed_total").increment(1);
                tracing::warn!(mail_id = %mail.id, attempts = mail.attempts, "mail given up after retries");
                store.mark_mail_failed(mail.id, now, &why).await
            }
            Err(MailError::Transient(why)) => {
                tracing::info!(mail_id = %mail.id, attempts = mail.attempts, "mail delivery failed; will retry");
                store
                    .mark_mail_retry(mail.id, now + backoff(mail.attempts), &why)
                    .await
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, mail_id = %mail.id, "mail outcome not recorded; the lease will expire and retry");
        }
    }
    claimed.len()
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use time::Duration;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::seconds(10));
        assert_eq!(backoff(2), Duration::seconds(20));
        assert_eq!(backoff(5), Duration::seconds(160));
        assert_eq!(backoff(12), Duration::hours(1));
        assert_eq!(backoff(1000), Duration::hours(1));
    }
}
