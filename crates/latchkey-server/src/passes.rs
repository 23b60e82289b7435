//! Completion signals of the server's background loops. A loop that runs in
//! passes (the outbox worker's rounds, the signing-key watcher's re-reads)
//! reports each pass it starts and finishes, so a caller — the tests — can wait
//! for "a pass that started after now has finished" instead of sleeping for a
//! guessed time, and can ask a loop that is waiting for its next pass to start
//! it at once. Reporting a pass costs two updates of a watch channel; nothing
//! in the server waits on them, and nothing in production asks for a pass, so
//! the loops keep their own pace.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{watch, Notify};

/// How far a loop got: the number of the last pass started, and the highest
/// number of a pass that finished.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    started: u64,
    finished: u64,
}

/// One loop's pass reports. Clones share them (a supervised loop restarted
/// after a panic goes on counting where it stopped).
#[derive(Debug, Clone)]
pub struct Passes(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    progress: watch::Sender<Progress>,
    wake: Notify,
}

impl Default for Passes {
    fn default() -> Self {
        Self(Arc::new(Shared {
            progress: watch::Sender::new(Progress::default()),
            wake: Notify::new(),
        }))
    }
}

/// A pass in progress, as [`Passes::start`] numbered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a pass is finished with Passes::finish"]
pub struct Pass(u64);

impl Passes {
    /// Reports that the loop starts a pass now (before it reads anything the
    /// pass acts on), and returns it.
    pub fn start(&self) -> Pass {
        let mut pass = Pass(0);
        self.0.progress.send_modify(|p| {
            p.started += 1;
            pass = Pass(p.started);
        });
        pass
    }

    /// Reports that `pass` has finished: whatever it did is done and visible.
    /// A loop that only counts some passes as complete (the outbox worker: a
    /// round that found nothing left to send) finishes only those; a pass
    /// never finished (it panicked, or did not count) is simply overtaken by
    /// the next one finished.
    pub fn finish(&self, pass: Pass) {
        self.0
            .progress
            .send_modify(|p| p.finished = p.finished.max(pass.0));
    }

    /// Resolves when someone asked for a pass at once ([`Passes::run`]); a
    /// loop selects on it beside its own timer. A request made while the loop
    /// is busy is kept and answered after the pass in progress.
    pub async fn requested(&self) {
        self.0.wake.notified().await;
    }

    /// Resolves once a pass that started after this call has finished (the
    /// loop keeps its own pace). The starting point is taken by the call, not
    /// when the future is first polled. Never resolves if the loop stops
    /// running: bound the wait with a timeout.
    pub fn next(&self) -> impl Future<Output = ()> + Send + 'static {
        self.finished_after_now()
    }

    /// Asks the loop to start a pass at once instead of waiting for its timer,
    /// and resolves like [`Passes::next`]: once a pass that started after this
    /// call has finished.
    pub fn run(&self) -> impl Future<Output = ()> + Send + 'static {
        let finished = self.finished_after_now();
        self.0.wake.notify_one();
        finished
    }

    fn finished_after_now(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut progress = self.0.progress.subscribe();
        let target = progress.borrow_and_update().started + 1;
        // Holding the reports keeps the sender alive: `wait_for` cannot fail.
        let shared = Arc::clone(&self.0);
        async move {
            let _ = progress.wait_for(|p| p.finished >= target).await;
            drop(shared);
        }
    }
}

/// The pass reports of one server's background loops, made with the
/// `Application` and handed to the loops when it runs.
#[derive(Debug, Clone, Default)]
pub struct BackgroundPasses {
    /// The outbox worker: a pass is one claim-and-send round, finished only
    /// when the round claimed nothing. With the circuit breaker closed and the
    /// store working, every message due when the pass started has then been
    /// attempted (sent, scheduled for a retry, or given up) and its outcome
    /// recorded (see `mail_worker::Worker::run`).
    pub outbox: Passes,
    /// The signing-key watcher: a pass finishes after one read of the key
    /// storage at the clock's time then, with the ring in use replaced if the
    /// read found it changed (or kept, when the storage could not be read).
    pub key_watch: Passes,
    /// The event delivery worker: a pass is one round (dispatch, deliver,
    /// stream), finished only when the round found nothing to do: every event
    /// committed before it started is then queued for its webhooks (and
    /// added to the Redis stream), and every delivery due then attempted.
    pub events: Passes,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A loop that runs a pass when asked (or every hour), counting them.
    fn spawn_loop(passes: Passes) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_hours(1)) => {}
                    () = passes.requested() => {}
                }
                let pass = passes.start();
                tokio::task::yield_now().await;
                passes.finish(pass);
            }
        })
    }

    #[tokio::test]
    async fn run_wakes_the_loop_and_waits_for_a_pass_started_after_the_call() {
        let passes = Passes::default();
        let task = spawn_loop(passes.clone());
        for _ in 0..3 {
            tokio::time::timeout(Duration::from_secs(10), passes.run())
                .await
                .expect("a requested pass ran");
        }
        task.abort();
    }

    #[tokio::test]
    async fn a_pass_in_progress_or_unfinished_does_not_count() {
        let passes = Passes::default();
        let before = passes.start();
        // Not polled yet: the starting point is the call all the same.
        let next = passes.next();
        tokio::pin!(next);
        // The pass that started before the call ends: not enough.
        passes.finish(before);
        assert!(
            tokio::time::timeout(Duration::from_millis(20), &mut next)
                .await
                .is_err(),
            "a pass started before the call counted"
        );
        // One started after it but never finished, then one that finished.
        let _unfinished = passes.start();
        let after = passes.start();
        passes.finish(after);
        tokio::time::timeout(Duration::from_secs(10), next)
            .await
            .expect("the later pass counted");
    }

    #[tokio::test]
    async fn next_does_not_wake_the_loop() {
        let passes = Passes::default();
        let task = spawn_loop(passes.clone());
        assert!(
            tokio::time::timeout(Duration::from_millis(50), passes.next())
                .await
                .is_err(),
            "the loop ran before its timer"
        );
        task.abort();
    }
}
