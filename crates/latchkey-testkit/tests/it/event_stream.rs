//! The live event stream (`GET /v1/me/events/stream`) on a real server: an
//! event reaches the stream of its user (and no one else's), on the same
//! node and, over Redis, on another; `Last-Event-ID` replays what was
//! missed in order; the stream ends at logout; the caps answer 429; a client
//! that does not read is dropped instead of growing the server's memory.

use std::time::Duration;

use latchkey_core::audit::{EventKind, SecurityEvent};
use latchkey_testkit::app::TestApp;
use serde_json::Value;
use uuid::Uuid;

use crate::support::assert_problem;

const PASSWORD: &str = "correct horse battery staple";
/// Generous: an event normally arrives within milliseconds; this only keeps
/// a broken stream from hanging the suite.
const PATIENCE: Duration = Duration::from_secs(10);

/// One frame of a `text/event-stream`.
#[derive(Debug, Default, Clone)]
struct Frame {
    id: Option<String>,
    event: Option<String>,
    data: String,
    comment: bool,
}

/// Reads frames off a streaming response.
struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    /// The next frame; `None` when the server ended the stream.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut frame = Frame::default();
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        let _ = c;
                        frame.comment = true;
                    } else if let Some((field, value)) = line.split_once(':') {
                        let value = value.strip_prefix(' ').unwrap_or(value);
                        match field {
                            "id" => frame.id = Some(value.to_owned()),
                            "event" => frame.event = Some(value.to_owned()),
                            "data" => frame.data.push_str(value),
                            _ => {}
                        }
                    }
                }
                return Some(frame);
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The next event frame (heartbeats skipped), within [`PATIENCE`].
    async fn event(&mut self) -> Frame {
        tokio::time::timeout(PATIENCE, async {
            loop {
                match self.next().await {
                    Some(f) if f.comment => {}
                    Some(f) => return f,
                    None => panic!("the stream ended while an event was expected"),
                }
            }
        })
        .await
        .expect("no event arrived")
    }

    /// Whether the server ends the stream (within [`PATIENCE`]).
    async fn ends(&mut self) -> bool {
        tokio::time::timeout(PATIENCE, async { while self.next().await.is_some() {} })
            .await
            .is_ok()
    }
}

async fn open(app: &TestApp, token: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .get(app.url("/v1/me/events/stream"))
        .bearer_auth(token);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.unwrap()
}

async fn stream(app: &TestApp, token: &str, last_event_id: Option<&str>) -> Sse {
    let response = open(app, token, last_event_id).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    Sse {
        response,
        buffer: String::new(),
    }
}

async fn token(app: &TestApp, email: &str) -> String {
    let r = app.login(email, PASSWORD).await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn open_config(c: &mut latchkey_server::config::Config) {
    c.rate_limit.enabled = false;
}

#[tokio::test]
async fn an_event_reaches_its_users_stream_at_once_and_no_one_elses() {
    let app = TestApp::builder().configure(open_config).spawn().await;
    let ada = app.create_user("ada@example.com", PASSWORD, true).await;
    app.create_user("bob@example.com", PASSWORD, true).await;
    let ada_token = token(&app, "ada@example.com").await;
    let bob_token = token(&app, "bob@example.com").await;
    app.settled().await;
    let mut ada_stream = stream(&app, &ada_token, None).await;
    let mut bob_stream = stream(&app, &bob_token, None).await;

    // Nothing from before the stream opened; then ada's next sign-in.
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
    let frame = ada_stream.event().await;
    assert_eq!(frame.event.as_deref(), Some("login_succeeded"));
    let body: Value = serde_json::from_str(&frame.data).unwrap();
    assert_eq!(body["type"], "login_succeeded");
    assert_eq!(body["category"], "authentication");
    assert_eq!(body["user_id"], ada.to_string());
    assert_eq!(frame.id.as_deref(), body["id"].as_str());

    // Bob's stream got none of it: his own next event is the first he sees.
    assert_eq!(app.login("bob@example.com", PASSWORD).await.status(), 200);
    let frame = bob_stream.event().await;
    let body: Value = serde_json::from_str(&frame.data).unwrap();
    assert_ne!(body["user_id"], ada.to_string());
    assert_eq!(body["type"], "login_succeeded");
}

#[tokio::test]
async fn last_event_id_replays_what_was_missed_in_order_and_a_foreign_id_replays_nothing() {
    let app = TestApp::builder().configure(open_config).spawn().await;
    app.create_user("ada@example.com", PASSWORD, true).await;
    app.create_user("bob@example.com", PASSWORD, true).await;
    let ada_token = token(&app, "ada@example.com").await;
    let bob_token = token(&app, "bob@example.com").await;
    app.settled().await;
    let mut first = stream(&app, &ada_token, None).await;
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
    let seen = first.event().await.id.unwrap();
    drop(first);

    // Missed while away: a wrong password, then a sign-in.
    assert_eq!(
        app.login("ada@example.com", "wrong password")
            .await
            .status(),
        401
    );
    app.settled().await;
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
    app.settled().await;
    let mut resumed = stream(&app, &ada_token, Some(&seen)).await;
    let missed = [resumed.event().await, resumed.event().await];
    let kinds: Vec<_> = missed.iter().map(|f| f.event.clone().unwrap()).collect();
    assert_eq!(kinds, ["login_failed", "login_succeeded"]);
    assert!(missed[0].id.as_deref().unwrap() > seen.as_str());

    // Bob presenting ada's event id learns nothing of ada: his stream starts
    // at his next event.
    let mut bobs = stream(&app, &bob_token, Some(&seen)).await;
    assert_eq!(app.login("bob@example.com", PASSWORD).await.status(), 200);
    let body: Value = serde_json::from_str(&bobs.event().await.data).unwrap();
    assert_eq!(body["type"], "login_succeeded");
    assert_ne!(body["id"].as_str(), missed[1].id.as_deref());

    // An oversized Last-Event-ID is not looked at: the stream starts from now.
    let mut oversized = stream(
        &app,
        &ada_token,
        Some(&format!("{seen}{}", "0".repeat(100))),
    )
    .await;
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
    let body: Value = serde_json::from_str(&oversized.event().await.data).unwrap();
    assert_eq!(body["type"], "login_succeeded");
    assert_ne!(body["id"].as_str(), missed[0].id.as_deref());
    // Garbage in Last-Event-ID is no error: the stream starts from now.
    let mut garbage = stream(&app, &ada_token, Some("not-an-id")).await;
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
    assert_eq!(
        garbage.event().await.event.as_deref(),
        Some("login_succeeded")
    );
}

#[tokio::test]
async fn the_stream_ends_at_logout_and_refuses_the_logged_out_token() {
    let app = TestApp::builder().configure(open_config).spawn().await;
    app.create_user("ada@example.com", PASSWORD, true).await;
    let ada_token = token(&app, "ada@example.com").await;
    let mut live = stream(&app, &ada_token, None).await;
    let r = app
        .client
        .post(app.url("/v1/logout"))
        .bearer_auth(&ada_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(live.ends().await, "the stream outlived its logout");
    assert_problem(open(&app, &ada_token, None).await, 401, "unauthorized").await;
    assert_problem(
        app.client
            .get(app.url("/v1/me/events/stream"))
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn streams_beyond_the_users_cap_are_429_and_a_closed_one_frees_its_place() {
    let app = TestApp::builder()
        .configure(|c| {
            open_config(c);
            c.events.stream_max_per_user = 2;
        })
        .spawn()
        .await;
    app.create_user("ada@example.com", PASSWORD, true).await;
    app.create_user("bob@example.com", PASSWORD, true).await;
    let ada_token = token(&app, "ada@example.com").await;
    let bob_token = token(&app, "bob@example.com").await;
    let first = stream(&app, &ada_token, None).await;
    let _second = stream(&app, &ada_token, None).await;
    let body = assert_problem(open(&app, &ada_token, None).await, 429, "rate_limited").await;
    assert!(body["retry_after"].as_u64().unwrap() > 0);
    // Another user is not affected by ada's cap.
    let _bobs = stream(&app, &bob_token, None).await;
    drop(first);
    // The server sees the client leave at its next write or wake; a sign-in
    // of ada's wakes the stream that was dropped.
    let mut reopened = None;
    for _ in 0..100 {
        assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
        let r = open(&app, &ada_token, None).await;
        if r.status() == 200 {
            reopened = Some(r);
            break;
        }
        assert_eq!(r.status(), 429);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        reopened.is_some(),
        "the closed stream's place was never freed"
    );
}

#[tokio::test]
async fn an_idle_stream_gets_heartbeats() {
    let app = TestApp::builder()
        .configure(|c| {
            open_config(c);
            c.events.stream_heartbeat_seconds = 1;
        })
        .spawn()
        .await;
    app.create_user("ada@example.com", PASSWORD, true).await;
    let ada_token = token(&app, "ada@example.com").await;
    let mut live = stream(&app, &ada_token, None).await;
    let frame = tokio::time::timeout(PATIENCE, live.next())
        .await
        .expect("no heartbeat")
        .expect("the stream ended");
    assert!(frame.comment, "{frame:?}");
}

/// An event of `user` recorded straight in the store (as any service does).
fn event_of(user: Uuid, app: &TestApp) -> SecurityEvent {
    SecurityEvent {
        id: Uuid::now_v7(),
        user_id: Some(user),
        kind: EventKind::SessionRevoked,
        created_at: app.state.clock.now(),
        session_id: None,
        ip: Some("203.0.113.9".into()),
        user_agent: Some("x".repeat(200)),
        actor_id: None,
        details: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_dropped_and_frees_its_place() {
    let app = TestApp::builder().configure(open_config).spawn().await;
    let ada = app.create_user("ada@example.com", PASSWORD, true).await;
    let ada_token = token(&app, "ada@example.com").await;
    let stalled = open(&app, &ada_token, None).await;
    assert_eq!(stalled.status(), 200);
    assert_eq!(app.state.services.live.open(), 1);
    // Far more than the socket buffers and the stream's own buffer hold,
    // while the client reads nothing.
    let mut dropped = false;
    for _ in 0..400 {
        for _ in 0..100 {
            app.state
                .store
                .record_event(&event_of(ada, &app))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        if app.state.services.live.open() == 0 {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "a stalled client kept its stream");
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_on_one_node_reaches_a_stream_on_another_over_redis() {
    let Ok(url) = std::env::var("LATCHKEY_TEST_REDIS_URL") else {
        eprintln!("skipped: LATCHKEY_TEST_REDIS_URL not set");
        return;
    };
    let (a, b) = crate::rate_limit::two_nodes_on_one_redis(url).await;
    a.create_user("ada@example.com", PASSWORD, true).await;
    let ada_token = token(&a, "ada@example.com").await;
    a.settled().await;
    // Heartbeats are 15 s apart: an event seen sooner came over the bus.
    let mut on_b = stream(&b, &ada_token, None).await;
    let started = std::time::Instant::now();
    let mut seen = None;
    while seen.is_none() && started.elapsed() < PATIENCE {
        // The bus may still be subscribing: sign in on `a` until `b` hears.
        assert_eq!(a.login("ada@example.com", PASSWORD).await.status(), 200);
        seen = tokio::time::timeout(Duration::from_millis(500), on_b.next())
            .await
            .ok()
            .flatten()
            .filter(|f| !f.comment);
    }
    let frame = seen.expect("no event reached the other node");
    assert_eq!(frame.event.as_deref(), Some("login_succeeded"));
    assert!(
        started.elapsed() < Duration::from_secs(14),
        "the event came with a heartbeat, not over the bus"
    );
}

#[tokio::test]
async fn a_stopping_server_ends_its_streams_instead_of_waiting_for_their_clients() {
    let mut app = TestApp::builder().configure(open_config).spawn().await;
    app.create_user("ada@example.com", PASSWORD, true).await;
    let ada_token = token(&app, "ada@example.com").await;
    let mut live = stream(&app, &ada_token, None).await;
    let server = app.begin_shutdown().expect("server task");
    assert!(live.ends().await, "the stream outlived the shutdown");
    tokio::time::timeout(PATIENCE, server)
        .await
        .expect("the server waited for its stream's client")
        .unwrap();
}
