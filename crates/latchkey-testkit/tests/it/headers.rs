//! Security headers on every response, HSTS only for an https public URL, and
//! `Cache-Control: no-store` under `/v1`.

use latchkey_testkit::app::TestApp;

const EXPECTED: [(&str, &str); 7] = [
    (
        "content-security-policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("x-xss-protection", "0"),
    ("cross-origin-opener-policy", "same-origin"),
    ("permissions-policy", ""),
];

fn assert_security_headers(r: &reqwest::Response) {
    for (name, value) in EXPECTED {
        let got = r
            .headers()
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing on {}", r.url()));
        if !value.is_empty() {
            assert_eq!(got, value, "{name}");
        }
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_no_hsts_over_http() {
    let app = TestApp::builder()
        .routes(crate::probes::routes())
        .spawn()
        .await;
    for path in [
        "/healthz",
        "/readyz",
        "/v1/openapi.json",
        "/metrics",
        "/nope",
        "/test/panic",
    ] {
        let r = app.get(path).await;
        assert_security_headers(&r);
        assert!(
            r.headers().get("strict-transport-security").is_none(),
            "{path}"
        );
    }
    let r = app.client.post(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_security_headers(&r);
}

#[tokio::test]
async fn hsts_is_sent_when_the_public_url_is_https() {
    let app = TestApp::builder()
        .configure(|c| c.public_url = Some("https://auth.example.com".into()))
        .spawn()
        .await;
    for path in ["/healthz", "/nope"] {
        let r = app.get(path).await;
        assert_eq!(
            r.headers()["strict-transport-security"],
            "max-age=63072000; includeSubDomains"
        );
    }
}

#[tokio::test]
async fn no_store_under_v1_only() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.get("/v1/openapi.json").await.headers()["cache-control"],
        "no-store"
    );
    assert_eq!(
        app.get("/v1/unknown").await.headers()["cache-control"],
        "no-store"
    );
    assert!(app
        .get("/healthz")
        .await
        .headers()
        .get("cache-control")
        .is_none());
}
