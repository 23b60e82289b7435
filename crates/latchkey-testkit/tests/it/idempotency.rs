//! `Idempotency-Key` end to end: a repeat gets the first answer and does not
//! run, another body or an in-flight original is `409 idempotency_conflict`,
//! keys are per principal, credential endpoints ignore the header, refusals
//! and cancelled runs give the key up, kept answers are sealed at rest.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::routing::post;
use latchkey_core::auth::{Caller, ClientContext};
use latchkey_server::AppState;
use latchkey_testkit::app::{TestApp, TestAppBuilder};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::support::{assert_problem, Db};

const PASSWORD: &str = "correct horse battery staple";
const REPLAYED: &str = "idempotent-replayed";

fn builder() -> TestAppBuilder {
    TestApp::builder().configure(|c| c.rate_limit.enabled = false)
}

async fn token(app: &TestApp, email: &str) -> String {
    let r = app.login(email, PASSWORD).await;
    assert_eq!(r.status(), 200, "login of {email}");
    let body: Value = r.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// An administrator's access token on `app`.
async fn admin(app: &TestApp) -> String {
    let root = app.create_user("root@example.com", PASSWORD, true).await;
    app.state
        .services
        .admin
        .grant(Caller::Operator, root, "admin", &ClientContext::default())
        .await
        .unwrap();
    token(app, "root@example.com").await
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    key: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path)).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    request.send().await.unwrap()
}

fn replayed(r: &reqwest::Response) -> bool {
    r.headers().get(REPLAYED).is_some_and(|v| v == "true")
}

async fn accounts_with(app: &TestApp, token: &str, email: &str) -> usize {
    let r = app
        .client
        .get(app.url(&format!("/v1/admin/users?query={email}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    body["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_repeat_gets_the_first_answer_without_running_again() {
    let app = builder().spawn().await;
    let root = admin(&app).await;
    let create = json!({"email": "made@example.com", "password": "a long enough passphrase 9"});
    let first = send(
        &app,
        Method::POST,
        "/v1/admin/users",
        Some(&root),
        Some("create-1"),
        &create,
    )
    .await;
    assert_eq!(first.status(), 201);
    assert!(!replayed(&first));
    let first_type = first.headers()["content-type"].clone();
    let first_body: Value = first.json().await.unwrap();

    let again = send(
        &app,
        Method::POST,
        "/v1/admin/users",
        Some(&root),
        Some("create-1"),
        &create,
    )
    .await;
    assert_eq!(
        again.status(),
        201,
        "not 409 conflict: the create did not run twice"
    );
    assert!(replayed(&again));
    assert_eq!(again.headers()["content-type"], first_type);
    assert!(
        again.headers().contains_key("x-request-id"),
        "the usual headers still come"
    );
    assert_eq!(again.json::<Value>().await.unwrap(), first_body);
    assert_eq!(accounts_with(&app, &root, "made@example.com").await, 1);

    // Without the key, the same request runs (and conflicts on the address).
    let plain = send(
        &app,
        Method::POST,
        "/v1/admin/users",
        Some(&root),
        None,
        &create,
    )
    .await;
    assert_problem(plain, 409, "conflict").await;

    // Error answers of requests that ran are kept too.
    let bad = json!({"name": "x".repeat(500)});
    let r = send(
        &app,
        Method::PATCH,
        "/v1/me",
        Some(&root),
        Some("bad-name"),
        &bad,
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = send(
        &app,
        Method::PATCH,
        "/v1/me",
        Some(&root),
        Some("bad-name"),
        &bad,
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(replayed(&r));
    app.shutdown().await;
}

#[tokio::test]
async fn another_body_or_a_malformed_key_is_refused() {
    let app = builder().spawn().await;
    let root = admin(&app).await;
    let r = send(
        &app,
        Method::PATCH,
        "/v1/me",
        Some(&root),
        Some("k"),
        &json!({"name": "Ada"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = send(
        &app,
        Method::PATCH,
        "/v1/me",
        Some(&root),
        Some("k"),
        &json!({"name": "Eve"}),
    )
    .await;
    let problem = assert_problem(r, 409, "idempotency_conflict").await;
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("another request body"));
    let me: Value = app.get_as("/v1/me", &root).await.json().await.unwrap();
    assert_eq!(me["name"], "Ada", "the conflicting request did not run");

    let longest = "k".repeat(255);
    let r = send(
        &app,
        Method::PATCH,
        "/v1/me",
        Some(&root),
        Some(&longest),
        &json!({"name": "Bo"}),
    )
    .await;
    assert_eq!(r.status(), 200, "255 characters are a key");
    for bad in [&"k".repeat(256)[..], "with space", ""] {
        let r = send(
            &app,
            Method::PATCH,
            "/v1/me",
            Some(&root),
            Some(bad),
            &json!({"name": "Cy"}),
        )
        .await;
        assert_problem(r, 400, "malformed_request").await;
    }
    let non_ascii = reqwest::header::HeaderValue::from_bytes("clé".as_bytes()).unwrap();
    let r = app
        .client
        .patch(app.url("/v1/me"))
        .bearer_auth(&root)
        .header("Idempotency-Key", non_ascii)
        .json(&json!({"name": "Cy"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "malformed_request").await;
    let r = app
        .client
        .patch(app.url("/v1/me"))
        .bearer_auth(&root)
        .header("Idempotency-Key", "one")
        .header("Idempotency-Key", "two")
        .json(&json!({"name": "Cy"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "malformed_request").await;
    let me: Value = app.get_as("/v1/me", &root).await.json().await.unwrap();
    assert_eq!(me["name"], "Bo", "no malformed request ran");
    app.shutdown().await;
}

/// Eight identical creates at once: exactly one runs; the others get its
/// answer or `409 idempotency_conflict` (while it still ran).
async fn identical_requests_at_once_run_exactly_once(app: TestApp) {
    let root = admin(&app).await;
    let app = Arc::new(app);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (app, root) = (Arc::clone(&app), root.clone());
        tasks.push(tokio::spawn(async move {
            let body =
                json!({"email": "once@example.com", "password": "a long enough passphrase 9"});
            let r = send(
                &app,
                Method::POST,
                "/v1/admin/users",
                Some(&root),
                Some("race"),
                &body,
            )
            .await;
            let was_replayed = replayed(&r);
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            (
                status,
                was_replayed,
                body["code"].as_str().map(str::to_owned),
            )
        }));
    }
    let mut ran = 0;
    for task in tasks {
        match task.await.unwrap() {
            (201, false, None) => ran += 1,
            (201, true, None) => {}
            (409, false, Some(code)) if code == "idempotency_conflict" => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(ran, 1);
    assert_eq!(accounts_with(&app, &root, "once@example.com").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_requests_at_once_run_exactly_once_on_sqlite() {
    identical_requests_at_once_run_exactly_once(builder().spawn().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_requests_at_once_run_exactly_once_on_postgres() {
    let Some(builder) = builder().on_postgres().await else {
        return;
    };
    identical_requests_at_once_run_exactly_once(builder.spawn().await).await;
}

/// A probe under `/v1` that counts its runs and holds each until released.
#[derive(Default)]
struct Hold {
    entered: Notify,
    release: Notify,
    runs: AtomicUsize,
}

fn hold_routes(hold: &Arc<Hold>) -> axum::Router<AppState> {
    let hold = Arc::clone(hold);
    axum::Router::new().route(
        "/v1/test/hold",
        post(move || {
            let hold = Arc::clone(&hold);
            async move {
                hold.runs.fetch_add(1, Ordering::SeqCst);
                hold.entered.notify_one();
                hold.release.notified().await;
                "held"
            }
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_while_the_first_runs_is_a_conflict() {
    let hold = Arc::new(Hold::default());
    let app = Arc::new(builder().routes(hold_routes(&hold)).spawn().await);
    let first = {
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            send(
                &app,
                Method::POST,
                "/v1/test/hold",
                None,
                Some("slow"),
                &json!({}),
            )
            .await
        })
    };
    hold.entered.notified().await;
    let r = send(
        &app,
        Method::POST,
        "/v1/test/hold",
        None,
        Some("slow"),
        &json!({}),
    )
    .await;
    let problem = assert_problem(r, 409, "idempotency_conflict").await;
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("still running"));
    hold.release.notify_one();
    let first = first.await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.text().await.unwrap(), "held");
    let again = send(
        &app,
        Method::POST,
        "/v1/test/hold",
        None,
        Some("slow"),
        &json!({}),
    )
    .await;
    assert!(replayed(&again));
    assert_eq!(again.text().await.unwrap(), "held");
    assert_eq!(
        hold.runs.load(Ordering::SeqCst),
        1,
        "anonymous keys hold by address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_off_by_the_timeout_gives_its_key_up() {
    let hold = Arc::new(Hold::default());
    let app = builder()
        .configure(|c| c.http.request_timeout_ms = 300)
        .routes(hold_routes(&hold))
        .spawn()
        .await;
    let r = send(
        &app,
        Method::POST,
        "/v1/test/hold",
        None,
        Some("cut"),
        &json!({}),
    )
    .await;
    assert_problem(r, 503, "unavailable").await;
    app.settled().await;
    let second = send(
        &app,
        Method::POST,
        "/v1/test/hold",
        None,
        Some("cut"),
        &json!({}),
    )
    .await;
    assert_problem(second, 503, "unavailable").await;
    assert_eq!(hold.runs.load(Ordering::SeqCst), 2, "the retry ran");
    app.shutdown().await;
}

#[tokio::test]
async fn keys_are_per_principal_and_refusals_are_not_kept() {
    let app = builder().spawn().await;
    let root = admin(&app).await;
    let ada_id = app.create_user("ada@example.com", PASSWORD, true).await;
    let ada = token(&app, "ada@example.com").await;
    let body = json!({"name": "Same"});
    for t in [&root, &ada] {
        let r = send(
            &app,
            Method::PATCH,
            "/v1/me",
            Some(t),
            Some("shared"),
            &body,
        )
        .await;
        assert_eq!(r.status(), 200);
        assert!(!replayed(&r), "another principal's key is not this one's");
    }

    // A 403 is an access decision, not an outcome: the retry runs.
    let create = json!({"email": "later@example.com", "password": "a long enough passphrase 9"});
    let r = send(
        &app,
        Method::POST,
        "/v1/admin/users",
        Some(&ada),
        Some("grant-me"),
        &create,
    )
    .await;
    assert_problem(r, 403, "forbidden").await;
    app.state
        .services
        .admin
        .grant(Caller::Operator, ada_id, "admin", &ClientContext::default())
        .await
        .unwrap();
    let r = send(
        &app,
        Method::POST,
        "/v1/admin/users",
        Some(&ada),
        Some("grant-me"),
        &create,
    )
    .await;
    assert_eq!(r.status(), 201);
    assert!(!replayed(&r));

    // A 401 neither: the principal is then the address, and nothing is kept.
    let r = send(
        &app,
        Method::PATCH,
        "/v1/me",
        Some("forged"),
        Some("anon"),
        &body,
    )
    .await;
    assert_problem(r, 401, "unauthorized").await;
    let r = send(
        &app,
        Method::PATCH,
        "/v1/me",
        Some("forged"),
        Some("anon"),
        &body,
    )
    .await;
    assert!(!replayed(&r));
    assert_problem(r, 401, "unauthorized").await;
    app.shutdown().await;
}

#[tokio::test]
async fn credential_endpoints_ignore_the_key() {
    let app = builder().spawn().await;
    app.create_user("ada@example.com", PASSWORD, true).await;
    let login = json!({"email": "ada@example.com", "password": PASSWORD});
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let r = send(&app, Method::POST, "/v1/login", None, Some("login"), &login).await;
        assert_eq!(r.status(), 200);
        assert!(!replayed(&r));
        let body: Value = r.json().await.unwrap();
        tokens.push(body["refresh_token"].as_str().unwrap().to_owned());
    }
    assert_ne!(
        tokens[0], tokens[1],
        "each sign-in ran and issued its own tokens"
    );
    let refresh = json!({"refresh_token": tokens[0]});
    let r = send(
        &app,
        Method::POST,
        "/v1/token/refresh",
        None,
        Some("refresh"),
        &refresh,
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = send(
        &app,
        Method::POST,
        "/v1/token/refresh",
        None,
        Some("refresh"),
        &refresh,
    )
    .await;
    assert!(
        !replayed(&r),
        "a replayed refresh would hand out the rotated token again"
    );
    assert_ne!(r.status(), 200);
    // An anonymous unsafe request that issues nothing is keyed by address.
    let forgot = json!({"email": "ada@example.com"});
    let r = send(
        &app,
        Method::POST,
        "/v1/password/forgot",
        None,
        Some("forgot"),
        &forgot,
    )
    .await;
    assert_eq!(r.status(), 202);
    let r = send(
        &app,
        Method::POST,
        "/v1/password/forgot",
        None,
        Some("forgot"),
        &forgot,
    )
    .await;
    assert!(replayed(&r));
    app.settled().await;
    app.mail_settled().await;
    let resets = app
        .wait_for_mails("ada@example.com", 1)
        .await
        .into_iter()
        .filter(|m| m.contains("lk_pr_"))
        .count();
    assert_eq!(resets, 1, "one reset link: the repeat did not run");
    app.shutdown().await;
}

#[tokio::test]
async fn kept_answers_are_sealed_at_rest_and_cleaned_after_a_day() {
    let app = builder().spawn().await;
    let root = admin(&app).await;
    let create =
        json!({"email": "sealed-answer@example.com", "password": "a long enough passphrase 9"});
    let r = send(
        &app,
        Method::POST,
        "/v1/admin/users",
        Some(&root),
        Some("seal"),
        &create,
    )
    .await;
    assert_eq!(r.status(), 201);
    let rows: Vec<(Vec<u8>, Option<Vec<u8>>)> = match Db::of(&app).await {
        Db::Sqlite(mut c) => sqlx::query_as("SELECT record_key, response FROM idempotency_keys")
            .fetch_all(&mut c)
            .await
            .unwrap(),
        Db::Postgres(mut c) => sqlx::query_as("SELECT record_key, response FROM idempotency_keys")
            .fetch_all(&mut c)
            .await
            .unwrap(),
    };
    assert_eq!(rows.len(), 1);
    let (record_key, response) = &rows[0];
    assert!(
        !record_key.windows(4).any(|w| w == b"seal"),
        "the key is not stored"
    );
    let response = response.as_ref().expect("the answer is kept");
    let text = String::from_utf8_lossy(response);
    assert!(
        !text.contains("sealed-answer"),
        "the answer is sealed: {text}"
    );
    assert!(!text.contains("201"));

    let later = latchkey_core::clock::Clock::now(&*app.state.clock) + time::Duration::hours(25);
    let report = latchkey_core::maintenance::Cleaner::default()
        .run(&*app.state.store, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.idempotency_keys, 1);
    app.shutdown().await;
}
