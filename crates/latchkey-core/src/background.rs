//! Work left for after an answer: the forgot-password lookup and mail, the
//! verification resend, a failed sign-in's bookkeeping, a lock's event and
//! notice, giving back an abandoned sign-in attempt.
//!
//! Guarantees: at most [`CAPACITY`] such tasks are in flight at once; beyond
//! that a task is dropped — counted in
//! `latchkey_background_dropped_total{task}`, logged at debug — rather than
//! queued without bound (a spray of requests cannot pile up work and memory).
//! Each task carries the span of the request that started it. [`Background::idle`]
//! resolves once nothing is in flight: tests wait on it instead of sleeping.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{Notify, Semaphore};
use tracing::Instrument;

/// Tasks in flight at most.
pub const CAPACITY: usize = 256;

/// The bounded runner (cheap to clone; clones share the bound and the count).
#[derive(Debug, Clone)]
pub struct Background {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    permits: Arc<Semaphore>,
    in_flight: AtomicUsize,
    idle: Notify,
}

impl Default for Background {
    fn default() -> Self {
        Self::new(CAPACITY)
    }
}

/// Ends one task's stay in flight however the task ends (done, panicked or
/// dropped with the runtime).
struct InFlight {
    inner: Arc<Inner>,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.inner.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

impl Background {
    /// A runner with room for `capacity` tasks in flight.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(capacity)),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        }
    }

    /// Runs `work` on the current Tokio runtime, in the current span, when
    /// there is room; otherwise (or outside a runtime) drops it (see the
    /// module docs). Whether it was taken.
    pub fn spawn(
        &self,
        task: &'static str,
        work: impl Future<Output = ()> + Send + 'static,
    ) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let Ok(permit) = Arc::clone(&self.inner.permits).try_acquire_owned() else {
            metrics::counter!("latchkey_background_dropped_total", "task" => task).increment(1);
            tracing::debug!(task, "background queue full: task dropped");
            return false;
        };
        self.inner.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight {
            inner: Arc::clone(&self.inner),
            _permit: permit,
        };
        runtime.spawn(
            async move {
                work.await;
                drop(guard);
            }
            .instrument(tracing::Span::current()),
        );
        true
    }

    /// Tasks in flight now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Acquire)
    }

    /// Resolves once no task is in flight (at once if none is). Tasks that a
    /// finishing task starts keep it waiting.
    pub async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            // Register before reading the count: a task ending in between
            // still wakes this waiter.
            notified.as_mut().enable();
            if self.in_flight() == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn beyond_its_capacity_work_is_dropped_not_queued() {
        let background = Background::new(2);
        let (release, wait) = tokio::sync::watch::channel(false);
        for _ in 0..2 {
            let mut wait = wait.clone();
            assert!(background.spawn("test", async move {
                let _ = wait.wait_for(|go| *go).await;
            }));
        }
        assert!(!background.spawn("test", async {}), "full");
        assert_eq!(background.in_flight(), 2);
        let _ = release.send(true);
        background.idle().await;
        assert_eq!(background.in_flight(), 0);
        // Room again once they finished (the permit goes with the task).
        assert!(background.spawn("test", async {}));
        background.idle().await;
    }

    #[tokio::test]
    async fn idle_waits_for_tasks_started_by_tasks() {
        let background = Background::new(8);
        let done = Arc::new(AtomicUsize::new(0));
        let (inner, counter) = (background.clone(), Arc::clone(&done));
        background.spawn("outer", async move {
            tokio::task::yield_now().await;
            let counter2 = Arc::clone(&counter);
            inner.spawn("inner", async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                counter2.fetch_add(1, Ordering::SeqCst);
            });
            counter.fetch_add(1, Ordering::SeqCst);
        });
        background.idle().await;
        assert_eq!(done.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn outside_a_runtime_nothing_is_taken() {
        let background = Background::new(1);
        assert!(!background.spawn("test", async {}));
        assert_eq!(background.in_flight(), 0);
    }
}
