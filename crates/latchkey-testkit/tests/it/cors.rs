//! Exact-origin CORS: listed origins get the headers, everyone else gets none.

use latchkey_testkit::app::TestApp;

const ALLOWED: &str = "https://app.example.com";

async fn app() -> TestApp {
    TestApp::builder()
        .configure(|c| c.cors.allowed_origins = vec![ALLOWED.into()])
        .spawn()
        .await
}

#[tokio::test]
async fn an_allowed_origin_gets_cors_headers_with_credentials() {
    let app = app().await;
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], ALLOWED);
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(exposed.contains("x-request-id"), "{exposed}");
}

#[tokio::test]
async fn other_origins_get_no_cors_headers() {
    let app = app().await;
    for origin in [
        "https://evil.example.com",
        "https://app.example.com.evil.com",
        "http://app.example.com",
        "https://app.example.com:8443",
        "null",
    ] {
        let r = app
            .client
            .get(app.url("/healthz"))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert!(
            r.headers().get("access-control-allow-origin").is_none(),
            "{origin}"
        );
        assert!(
            r.headers()
                .get("access-control-allow-credentials")
                .is_none(),
            "{origin}"
        );
    }
}

#[tokio::test]
async fn preflight_answers_allowed_origins_only() {
    let app = app().await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/v1/openapi.json"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type, x-csrf-token",
            )
            .send()
    };
    let r = preflight(ALLOWED).await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(r.headers()["access-control-allow-origin"], ALLOWED);
    assert_eq!(r.headers()["access-control-max-age"], "600");
    let methods = r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("POST"), "{methods}");
    let headers = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(headers.contains("x-csrf-token"), "{headers}");

    let r = preflight("https://evil.example.com").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    assert!(
        r.headers().get("access-control-allow-methods").is_none()
            || r.headers().get("access-control-allow-origin").is_none()
    );
}

#[tokio::test]
async fn no_origin_configured_means_no_cors_at_all() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("origin", ALLOWED)
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}
