//! Keeping background tasks alive. The mail worker, the cleanup task and the
//! signing-key watcher run beside the HTTP server; before, a panic in one of
//! them ended it silently while the server went on answering (mail stayed
//! queued, expired rows piled up, rotated keys were not picked up). Supervised,
//! a task that panics is logged, counted in `latchkey_task_restarts_total`
//! and started again after a growing pause (1 s doubling to 60 s).

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// The first pause before a restart.
pub const FIRST_RESTART_DELAY: Duration = Duration::from_secs(1);
/// The longest pause between restarts.
const MAX_RESTART_DELAY: Duration = Duration::from_mins(1);

/// Runs the task `make` builds until it returns (it returns when `stop` is
/// set, or has nothing to do); a panic restarts it after `first_delay`, then
/// after twice as long each time (at most 60 s; back to `first_delay` after a
/// run longer than that), unless `stop` is set.
pub async fn supervise<F, Fut>(
    name: &'static str,
    mut stop: watch::Receiver<bool>,
    first_delay: Duration,
    mut make: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut delay = first_delay;
    loop {
        let started = tokio::time::Instant::now();
        match tokio::spawn(make()).await {
            Err(e) if e.is_panic() => {
                // A task that ran well for a while starts over with short pauses.
                if started.elapsed() > MAX_RESTART_DELAY {
                    delay = first_delay;
                }
                let panic = e.into_panic();
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(
                    task = name,
                    panic = %message,
                    restart_in_ms = delay.as_millis(),
                    "background task panicked; restarting it"
                );
                metrics::counter!("latchkey_task_restarts_total", "task" => name).increment(1);
            }
            // Returned, or cancelled with the runtime.
            _ => return,
        }
        if *stop.borrow() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
        delay = (delay * 2).min(MAX_RESTART_DELAY);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_panicking_task_is_restarted_until_it_returns() {
        let (_stop_tx, stop) = watch::channel(false);
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&runs);
        supervise("test", stop, Duration::from_millis(1), move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                assert!(n >= 2, "run {n} fails");
            }
        })
        .await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            3,
            "two panics, then a clean run"
        );
    }

    #[tokio::test]
    async fn stop_ends_the_restarts() {
        let (stop_tx, stop) = watch::channel(false);
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&runs);
        let supervisor = tokio::spawn(supervise(
            "test",
            stop,
            Duration::from_hours(1),
            move || {
                counter.fetch_add(1, Ordering::SeqCst);
                async { panic!("always") }
            },
        ));
        // The first run panics; the supervisor then waits an hour unless stopped.
        while runs.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), supervisor)
            .await
            .expect("stopped at once")
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
