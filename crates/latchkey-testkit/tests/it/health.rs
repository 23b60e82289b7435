//! `/healthz`, `/readyz` and behaviour with the database or Redis down: 503 naming
//! the dependency, never a 500.

use latchkey_testkit::app::TestApp;

use crate::support::assert_problem;

#[tokio::test]
async fn healthz_and_readyz_answer_ok() {
    let app = TestApp::spawn().await;
    let r = app.get("/healthz").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    assert_eq!(r.text().await.unwrap(), r#"{"status":"ok"}"#);
    let r = app.get("/readyz").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), r#"{"status":"ok"}"#);
}

/// With the database gone, readiness fails naming it, liveness still answers, and
/// no documented route answers 500.
async fn database_down_is_503_and_never_500(app: TestApp) {
    app.state.store.close().await;
    let body = assert_problem(app.get("/readyz").await, 503, "unavailable").await;
    assert!(
        body["detail"].as_str().unwrap().contains("database"),
        "{body}"
    );
    assert_eq!(app.get("/healthz").await.status(), 200);

    let doc: serde_json::Value = app.get("/v1/openapi.json").await.json().await.unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method =
                reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            let r = app
                .client
                .request(method.clone(), app.url(path))
                .send()
                .await
                .unwrap();
            assert_ne!(
                r.status().as_u16(),
                500,
                "{method} {path} answered 500 with the database down"
            );
        }
    }
}

#[tokio::test]
async fn database_down_is_503_on_the_default_backend() {
    database_down_is_503_and_never_500(TestApp::spawn().await).await;
}

#[tokio::test]
#[cfg_attr(
    latchkey_postgres_unset,
    ignore = "needs LATCHKEY_TEST_POSTGRES_URL (unset when built)"
)]
async fn readyz_ok_and_database_down_on_postgres() {
    let Some(builder) = TestApp::builder().on_postgres().await else {
        return;
    };
    let app = builder.spawn().await;
    assert_eq!(app.state.store.backend(), "postgres");
    assert_eq!(app.get("/readyz").await.status(), 200);
    database_down_is_503_and_never_500(app).await;
}

#[tokio::test]
async fn redis_down_makes_readyz_503_naming_redis() {
    // Port 1 on loopback: nothing listens there.
    let app = TestApp::builder()
        .configure(|c| c.redis.url = Some("redis://127.0.0.1:1".into()))
        .spawn()
        .await;
    let body = assert_problem(app.get("/readyz").await, 503, "unavailable").await;
    assert!(body["detail"].as_str().unwrap().contains("redis"), "{body}");
    assert!(
        !body["detail"].as_str().unwrap().contains("database"),
        "{body}"
    );
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn readyz_with_a_live_redis_is_ok() {
    let Ok(url) = std::env::var("LATCHKEY_TEST_REDIS_URL") else {
        eprintln!("skipped: LATCHKEY_TEST_REDIS_URL not set");
        return;
    };
    let app = TestApp::builder()
        .configure(|c| c.redis.url = Some(url))
        .spawn()
        .await;
    assert_eq!(app.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn both_down_names_both() {
    let app = TestApp::builder()
        .configure(|c| c.redis.url = Some("redis://127.0.0.1:1".into()))
        .spawn()
        .await;
    app.state.store.close().await;
    let body = assert_problem(app.get("/readyz").await, 503, "unavailable").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("database") && detail.contains("redis"),
        "{detail}"
    );
}
