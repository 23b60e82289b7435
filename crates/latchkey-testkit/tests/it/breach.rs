//! The breached-password check through the API: a local server speaking the
//! range-API format (hit, miss, padding, what is sent, 500 and timeouts with the
//! circuit breaker, fail-open and fail-closed) and an offline corpus file.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use latchkey_core::password::sha1_hex;
use latchkey_server::config::{BreachMode, Config};
use latchkey_testkit::app::TestApp;
use serde_json::json;

use crate::support::assert_problem;

/// Passes every local rule, but is in the fake corpus.
const BREACHED: &str = "tangerine orbit calculus forty";
/// Passes every rule and is not in the corpus (its suffix only as padding).
const PADDED: &str = "velvet quarry lantern mosaic";
const CLEAN: &str = "harbor pixel meadow saffron";

/// A request the fake API saw: the path's prefix and the `Add-Padding` header.
type Seen = (String, Option<String>);

#[derive(Clone, Default)]
struct FakeApi {
    calls: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    mode: Arc<Mutex<&'static str>>,
}

async fn range(
    State(api): State<FakeApi>,
    Path(prefix): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, String) {
    api.calls.fetch_add(1, Ordering::SeqCst);
    let padding = headers
        .get("add-padding")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    api.seen.lock().unwrap().push((prefix.clone(), padding));
    let mode = *api.mode.lock().unwrap();
    match mode {
        "error" => return (StatusCode::INTERNAL_SERVER_ERROR, String::new()),
        "slow" => tokio::time::sleep(Duration::from_secs(3)).await,
        _ => {}
    }
    let mut lines = vec!["0018A45C4D1DEF81644B54AB7F969B88D65:3".to_owned()];
    for (password, count) in [(BREACHED, 42), (PADDED, 0)] {
        let hash = sha1_hex(password);
        if hash.starts_with(&prefix) {
            lines.push(format!("{}:{count}", &hash[5..]));
        }
    }
    lines.push("FFFFF45C4D1DEF81644B54AB7F969B88D65:0".to_owned());
    (StatusCode::OK, lines.join("\r\n"))
}

async fn fake_api() -> (FakeApi, String) {
    let api = FakeApi::default();
    *api.mode.lock().unwrap() = "ok";
    let app = axum::Router::new()
        .route("/range/{prefix}", axum::routing::get(range))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/range/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (api, url)
}

fn with_api(url: String, fail_open: bool) -> impl FnOnce(&mut Config) {
    move |c| {
        c.password.breach_check = BreachMode::Api;
        c.password.breach_api_url = url;
        c.password.breach_timeout_ms = 300;
        c.password.breach_fail_open = fail_open;
        c.rate_limit.enabled = false;
    }
}

async fn signup(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/signup"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn assert_breached(r: reqwest::Response) {
    let body = assert_problem(r, 400, "validation_failed").await;
    assert_eq!(body["errors"][0]["code"], "breached", "{body}");
    assert_eq!(body["errors"][0]["field"], "password");
}

#[tokio::test]
async fn the_range_api_sees_five_hex_digits_and_padding_is_ignored() {
    let (api, url) = fake_api().await;
    let app = TestApp::builder()
        .configure(with_api(url, true))
        .spawn()
        .await;
    assert_breached(signup(&app, "a@example.com", BREACHED).await).await;
    assert_eq!(signup(&app, "b@example.com", PADDED).await.status(), 202);
    assert_eq!(signup(&app, "c@example.com", CLEAN).await.status(), 202);
    let seen = api.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for ((prefix, padding), password) in seen.iter().zip([BREACHED, PADDED, CLEAN]) {
        assert_eq!(prefix, &sha1_hex(password)[..5], "only the prefix leaves");
        assert_eq!(padding.as_deref(), Some("true"));
    }
    let policy: serde_json::Value = app.get("/v1/password/policy").await.json().await.unwrap();
    assert_eq!(policy["breach_check"], true);
}

#[tokio::test]
async fn a_failing_api_opens_the_breaker_and_fails_open_by_default() {
    let (api, url) = fake_api().await;
    *api.mode.lock().unwrap() = "error";
    let app = TestApp::builder()
        .configure(with_api(url, true))
        .spawn()
        .await;
    assert_eq!(signup(&app, "a@example.com", BREACHED).await.status(), 202);
    assert_eq!(api.calls.load(Ordering::SeqCst), 1);
    // The breaker is open: the next sign-ups do not call the service.
    *api.mode.lock().unwrap() = "ok";
    assert_eq!(signup(&app, "b@example.com", BREACHED).await.status(), 202);
    assert_eq!(api.calls.load(Ordering::SeqCst), 1, "breaker open");
}

#[tokio::test]
async fn a_slow_api_times_out_and_fail_closed_answers_503() {
    let (api, url) = fake_api().await;
    *api.mode.lock().unwrap() = "slow";
    let app = TestApp::builder()
        .configure(with_api(url, false))
        .spawn()
        .await;
    let started = std::time::Instant::now();
    let body = assert_problem(
        signup(&app, "a@example.com", CLEAN).await,
        503,
        "unavailable",
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("breached-password check"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "bounded by the timeout"
    );
    // Weak passwords are refused before any call.
    let r = signup(&app, "b@example.com", "password").await;
    assert_problem(r, 400, "validation_failed").await;
}

#[tokio::test]
async fn an_offline_corpus_file_is_used_and_a_bad_one_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pwned.txt");
    std::fs::write(
        &file,
        format!(
            "{}:42\n{}:7\n",
            sha1_hex(BREACHED),
            sha1_hex("password").to_lowercase()
        ),
    )
    .unwrap();
    let offline = |path: std::path::PathBuf| {
        move |c: &mut Config| {
            c.password.breach_check = BreachMode::File;
            c.password.breach_file = Some(path);
        }
    };
    let app = TestApp::builder().configure(offline(file)).spawn().await;
    assert_breached(signup(&app, "a@example.com", BREACHED).await).await;
    assert_eq!(signup(&app, "b@example.com", CLEAN).await.status(), 202);

    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "not a hash\n").unwrap();
    let err = TestApp::builder()
        .configure(offline(bad))
        .try_spawn()
        .await
        .err()
        .expect("a bad corpus stops the start");
    assert!(
        format!("{err:?}").contains("password.breach_file"),
        "{err:?}"
    );
}
