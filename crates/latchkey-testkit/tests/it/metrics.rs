//! `/metrics`: request counts and latency by matched route template, never by raw
//! path; optionally on a separate listener.

use latchkey_testkit::app::TestApp;

#[tokio::test]
async fn requests_are_counted_by_route_template_and_status() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/no/such/path-7f3a9c").await.status(), 404);
    let r = app.get("/metrics").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    let has = |needle: &str| {
        text.lines().any(|l| {
            l.starts_with("http_requests_total") && needle.split(',').all(|part| l.contains(part))
        })
    };
    assert!(
        has(r#"method="GET",route="/healthz",status="200""#),
        "{text}"
    );
    assert!(has(r#"route="unmatched",status="404""#), "{text}");
    assert!(
        !text.contains("path-7f3a9c"),
        "raw paths never become labels"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("http_request_duration_seconds_bucket")
                && l.contains(r#"route="/healthz""#)
                && l.contains("le=")),
        "{text}"
    );
    assert!(text.contains("http_request_duration_seconds_count"));
}

#[tokio::test]
async fn unknown_methods_do_not_create_new_labels() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .request(
            reqwest::Method::from_bytes(b"BREW").unwrap(),
            app.url("/healthz"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(!text.contains("BREW"));
    assert!(text.contains(r#"method="other""#));
}

#[tokio::test]
async fn metrics_can_move_to_a_separate_listener() {
    let app = TestApp::builder()
        .configure(|c| c.metrics.listen = Some("127.0.0.1:0".parse().unwrap()))
        .spawn()
        .await;
    assert_eq!(
        app.get("/metrics").await.status(),
        404,
        "not on the main listener"
    );
    let addr = app.metrics_addr.expect("metrics listener bound");
    let r = app
        .client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("http_requests_total"));
    let r = app
        .client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "the metrics listener serves only /metrics");
}

#[tokio::test]
async fn metrics_can_be_disabled() {
    let app = TestApp::builder()
        .configure(|c| c.metrics.enabled = false)
        .spawn()
        .await;
    assert_eq!(app.get("/metrics").await.status(), 404);
}
