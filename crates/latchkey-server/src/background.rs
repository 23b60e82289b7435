//! Work a request leaves for after its answer (the forgot-password lookup and
//! mail, the verification resend), so the answer and its timing tell nothing.
//!
//! Guarantees: at most [`CAPACITY`] such tasks are in flight at once; beyond
//! that a task is dropped — counted in
//! `latchkey_background_dropped_total{task}`, logged at debug — rather than
//! queued without bound (a spray of addresses cannot pile up work and memory).
//! A dropped task loses only work whose answer was already the same either way
//! (`202`); each task carries the span of the request that started it.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tracing::Instrument;

/// Tasks in flight at most.
pub const CAPACITY: usize = 256;

/// The bounded runner (cheap to clone; clones share the bound).
#[derive(Debug, Clone)]
pub struct Background {
    permits: Arc<Semaphore>,
}

impl Default for Background {
    fn default() -> Self {
        Self::new(CAPACITY)
    }
}

impl Background {
    /// A runner with room for `capacity` tasks in flight.
    pub fn new(capacity: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(capacity)),
        }
    }

    /// Runs `work` in the background, in the current span, when there is
    /// room; otherwise drops it (see the module docs). Whether it was taken.
    pub fn spawn(
        &self,
        task: &'static str,
        work: impl Future<Output = ()> + Send + 'static,
    ) -> bool {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            metrics::counter!("latchkey_background_dropped_total", "task" => task).increment(1);
            tracing::debug!(task, "background queue full: task dropped");
            return false;
        };
        tokio::spawn(
            async move {
                work.await;
                drop(permit);
            }
            .instrument(tracing::Span::current()),
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn beyond_its_capacity_work_is_dropped_not_queued() {
        let background = Background::new(2);
        let (release, wait) = tokio::sync::watch::channel(false);
        let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..2 {
            let (mut wait, done) = (wait.clone(), done_tx.clone());
            assert!(background.spawn("test", async move {
                let _ = wait.wait_for(|go| *go).await;
                let _ = done.send(());
            }));
        }
        assert!(!background.spawn("test", async {}), "full");
        let _ = release.send(true);
        for _ in 0..2 {
            done_rx.recv().await.unwrap();
        }
        // Room again once they finished (the permit goes with the task).
        tokio::task::yield_now().await;
        let mut taken = false;
        for _ in 0..100 {
            if background.spawn("test", async {}) {
                taken = true;
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(taken);
    }
}
