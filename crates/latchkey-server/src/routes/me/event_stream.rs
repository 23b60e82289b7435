//! `GET /v1/me/events/stream`: the signed-in user's security events as they
//! happen, as Server-Sent Events.
//!
//! Each stream has a producer task that reads the user's new events from the
//! store when woken (a commit on this node, a peer's notice over Redis, or the
//! heartbeat) and hands them to the connection through a small bounded
//! buffer. A client that does not read fills the buffer and is dropped; the
//! task then ends and frees the stream's place, so a slow consumer never
//! grows memory. The task also ends when the client leaves, when the
//! credential stops being valid (logout, revoked session, expired token), and
//! when the server stops.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use latchkey_core::auth::EventStream;
use tokio::sync::{mpsc, watch};

use crate::error::{ApiError, Problem};
use crate::extract::auth::presented_token;
use crate::extract::Authenticated;
use crate::routes::events::SecurityEventBody;
use crate::state::AppState;

/// Frames a stream may have waiting for its client; one more and the client
/// is dropped as too slow.
pub const STREAM_BUFFER: usize = 64;
/// Longest `Last-Event-ID` looked at (an event id is 36 characters).
const MAX_LAST_EVENT_ID: usize = 64;

type Frames = mpsc::Receiver<Result<Event, Infallible>>;

/// A `text/event-stream` of the caller's new security events: `id:` the
/// event id, `event:` its type, `data:` the `SecurityEvent` JSON. With
/// `Last-Event-ID`, the events after that one (of the caller's) are sent
/// first. A comment line every `events.stream_heartbeat_seconds` (15) keeps it
/// open. The stream ends at logout, when the session is revoked or the
/// token expires (reconnect with a fresh one and `Last-Event-ID`), and for a
/// client too slow to read.
#[utoipa::path(get, path = "/v1/me/events/stream", tag = "me", security(("bearer" = []), ("cookie" = [])),
    params(("Last-Event-ID" = Option<String>, Header, description = "Resume after this event (an id received before)")),
    responses(
        (status = 200, description = "The caller's new events, as Server-Sent Events", content_type = "text/event-stream", body = String),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`: too many streams open for this user or on this node", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn stream(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    parts: Parts,
    headers: HeaderMap,
) -> Result<Sse<frames::Frames>, ApiError> {
    let (token, _) = presented_token(&parts, &state).ok_or(ApiError::Unauthorized)?;
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= MAX_LAST_EVENT_ID);
    let stream = state
        .services
        .sessions
        .open_event_stream(&p, token, last)
        .await?;
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let heartbeat = Duration::from_secs(state.config.events.stream_heartbeat_seconds);
    // The stream's own producer: bounded by the stream caps, it ends with the
    // connection (see the module docs), so it is not work left after an answer.
    tokio::spawn(pump(stream, tx, heartbeat, state.services.live.closing()));
    Ok(Sse::new(frames::Frames(rx)))
}

/// Feeds `tx` until the stream must end (see the module docs).
async fn pump(
    mut stream: EventStream,
    tx: mpsc::Sender<Result<Event, Infallible>>,
    heartbeat: Duration,
    mut closing: watch::Receiver<bool>,
) {
    if *closing.borrow() {
        return;
    }
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    loop {
        // The store is down: end; the client comes back with Last-Event-ID.
        let Ok(events) = stream.next_events().await else {
            return;
        };
        let caught_up = events.len() < latchkey_core::auth::STREAM_BATCH as usize;
        for event in &events {
            if tx.try_send(Ok(frame(event))).is_err() {
                metrics::counter!("latchkey_event_streams_dropped_total").increment(1);
                return;
            }
        }
        if !caught_up {
            continue;
        }
        tokio::select! {
            () = stream.woken() => {}
            _ = beat.tick() => {
                if tx.try_send(Ok(Event::default().comment(""))).is_err() {
                    metrics::counter!("latchkey_event_streams_dropped_total").increment(1);
                    return;
                }
            }
            () = tx.closed() => return,
            _ = closing.changed() => return,
        }
        if !stream.still_valid().await {
            return;
        }
    }
}

/// One event as an SSE frame.
fn frame(event: &latchkey_core::audit::SecurityEvent) -> Event {
    let body = SecurityEventBody::from(event);
    let data = serde_json::to_string(&body).unwrap_or_else(|_| "{}".into());
    Event::default()
        .id(event.id.to_string())
        .event(body.kind)
        .data(data)
}

/// The receiver of a stream's frames as the `Stream` axum's `Sse` takes.
mod frames {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// The frames of one stream, in order; ends when the producer does.
    pub struct Frames(pub(super) super::Frames);

    impl futures::Stream for Frames {
        type Item = Result<axum::response::sse::Event, std::convert::Infallible>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.poll_recv(cx)
        }
    }
}
