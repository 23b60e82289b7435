//! The background cleanup of expired data (see `latchkey_core::maintenance`).

use std::sync::Arc;
use std::time::Duration;

use latchkey_core::clock::Clock;
use latchkey_core::maintenance::{Cleaner, CleanupReport};
use latchkey_core::ports::{Store, StoreError};
use tokio::sync::watch;

/// Runs one cleanup and logs what it removed.
pub async fn run_once(
    cleaner: &Cleaner,
    store: &dyn Store,
    clock: &dyn Clock,
) -> Option<Result<CleanupReport, StoreError>> {
    let result = cleaner.run(store, clock.now()).await;
    match &result {
        Some(Ok(r)) => tracing::info!(
            sessions = r.sessions,
            refresh_tokens = r.refresh_tokens,
            denied_access_tokens = r.denied_access_tokens,
            verification_tokens = r.verification_tokens,
            old_mail = r.old_mail,
            mfa_challenges = r.mfa_challenges,
            login_throttles = r.login_throttles,
            idempotency_keys = r.idempotency_keys,
            webhook_deliveries = r.webhook_deliveries,
            "cleanup done"
        ),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "cleanup failed; will retry at the next interval");
        }
        None => tracing::info!("cleanup already running; skipped"),
    }
    result
}

/// Cleans every `interval` until `stop` turns true (the first run one interval
/// after start). Runs never overlap.
pub async fn run(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    if interval.is_zero() {
        return;
    }
    let cleaner = Cleaner::default();
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        run_once(&cleaner, &*store, &*clock).await;
    }
}
