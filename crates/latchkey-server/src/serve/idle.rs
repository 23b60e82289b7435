//! Closing connections that hold a socket without using it: one that has not
//! sent its first request's headers within `http.header_read_timeout_ms` of
//! being accepted (nothing sent, a partial HTTP/2 preface, h2c after SETTINGS,
//! a TLS connection idle after its handshake, HTTP/2 HEADERS never ended), and
//! one with no request in flight for `http.idle_timeout_ms`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::watch;
use tokio::time::Instant;

/// What one connection is doing, as its idle deadline sees it.
#[derive(Debug, Clone, Copy)]
struct Phase {
    in_flight: usize,
    /// When the last request ended (or the connection was accepted).
    idle_since: Instant,
    /// Requests received so far.
    received: u64,
}

/// The requests of one connection: cheap to clone into its service.
#[derive(Debug, Clone)]
pub struct Activity(Arc<watch::Sender<Phase>>);

/// One request in flight on its connection, until dropped (with the response
/// body, once it has been sent, or with the request if it is abandoned).
#[derive(Debug)]
pub struct Busy(Activity);

/// How long a connection may hold its socket without using it.
#[derive(Debug, Clone, Copy)]
pub struct IdleLimits {
    /// From accept to the first request's headers.
    pub first_request: Duration,
    /// With no request in flight, after the first.
    pub idle: Duration,
    /// After an idle connection is told to close (HTTP/2: GOAWAY), before it
    /// is cut off: a request that raced the close still gets its answer.
    pub close_grace: Duration,
}

/// Why [`drive`] closed a connection itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// It ended by itself (peer closed, protocol error, ...).
    ByItself,
    /// No first request in time.
    NoRequest,
    /// Idle too long.
    Idle,
    /// The server is shutting down.
    Shutdown,
}

impl Activity {
    /// A connection accepted now.
    pub fn new() -> Self {
        let (tx, _) = watch::channel(Phase {
            in_flight: 0,
            idle_since: Instant::now(),
            received: 0,
        });
        Self(Arc::new(tx))
    }

    /// A request arrived; it is in flight until the returned guard drops.
    pub fn begin(&self) -> Busy {
        self.0.send_modify(|p| {
            p.in_flight += 1;
            p.received += 1;
        });
        Busy(self.clone())
    }

    /// Resolves when the connection has been unused past `limits`: `true`
    /// when it never sent a request.
    async fn unused(&self, limits: IdleLimits) -> bool {
        let mut phases = self.0.subscribe();
        loop {
            let phase = *phases.borrow_and_update();
            if phase.in_flight > 0 {
                // The sender lives in `self`: `changed` cannot fail here.
                let _ = phases.changed().await;
                continue;
            }
            let limit = if phase.received == 0 {
                limits.first_request
            } else {
                limits.idle
            };
            tokio::select! {
                () = tokio::time::sleep_until(phase.idle_since + limit) => return phase.received == 0,
                _ = phases.changed() => {}
            }
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0 .0.send_modify(|p| {
            p.in_flight = p.in_flight.saturating_sub(1);
            if p.in_flight == 0 {
                p.idle_since = Instant::now();
            }
        });
    }
}

/// A response body that keeps its request in flight until it is sent.
pub struct Tracked<B> {
    inner: B,
    _busy: Busy,
}

impl<B> Tracked<B> {
    /// `inner`, with `busy` held until it is dropped.
    pub fn new(inner: B, busy: Busy) -> Self {
        Self { inner, _busy: busy }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `conn` until it ends, it stays unused past `limits`, or `stop` turns
/// true; in the last two cases it is told to close gracefully (in-flight
/// requests finish, HTTP/2 gets GOAWAY). An unused connection that does not
/// close within `limits.close_grace` is cut off; on shutdown the caller
/// bounds the wait (`http.shutdown_grace_ms`).
pub async fn drive<C: GracefulConnection>(
    conn: C,
    activity: &Activity,
    limits: IdleLimits,
    mut stop: watch::Receiver<bool>,
) -> (Closed, Result<(), C::Error>) {
    let mut conn = std::pin::pin!(conn);
    let closed = tokio::select! {
        served = conn.as_mut() => return (Closed::ByItself, served),
        never_used = activity.unused(limits) => {
            if never_used { Closed::NoRequest } else { Closed::Idle }
        }
        _ = stop.wait_for(|stopped| *stopped) => Closed::Shutdown,
    };
    conn.as_mut().graceful_shutdown();
    if closed == Closed::Shutdown {
        return (closed, conn.await);
    }
    match tokio::time::timeout(limits.close_grace, conn).await {
        Ok(served) => (closed, served),
        // Dropping the connection closes the socket.
        Err(_) => (closed, Ok(())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> IdleLimits {
        IdleLimits {
            first_request: Duration::from_secs(10),
            idle: Duration::from_mins(1),
            close_grace: Duration::from_secs(1),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_a_request_is_unused_after_the_first_request_limit() {
        let activity = Activity::new();
        let started = Instant::now();
        assert!(activity.unused(limits()).await, "never used");
        let waited = started.elapsed();
        assert!(
            waited >= limits().first_request && waited < limits().idle,
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_keeps_it_and_idleness_counts_from_its_end() {
        let activity = Activity::new();
        let busy = activity.begin();
        let watcher = {
            let activity = activity.clone();
            tokio::spawn(async move { activity.unused(limits()).await })
        };
        tokio::time::sleep(Duration::from_mins(5)).await;
        assert!(!watcher.is_finished(), "in flight: never idle");
        let ended = Instant::now();
        drop(busy);
        assert!(!watcher.await.unwrap(), "it had a request");
        let waited = ended.elapsed();
        assert!(
            waited >= limits().idle && waited < limits().idle * 2,
            "{waited:?}"
        );
    }
}
