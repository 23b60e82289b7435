//! Every error is problem+json (API.md): unknown route, wrong method, oversized
//! body, wrong content type, malformed JSON, unknown fields, timeouts, panics.

use latchkey_testkit::app::TestApp;

use crate::probes;
use crate::support::{assert_no_internals, assert_problem, post_json};

async fn app() -> TestApp {
    TestApp::builder().routes(probes::routes()).spawn().await
}

#[tokio::test]
async fn unknown_route_is_a_404_problem() {
    let app = app().await;
    for path in [
        "/nope",
        "/v1/nope/123",
        "/v1/../../etc/passwd",
        "/%00",
        "/v1/openapi.json/x",
    ] {
        let r = app.get(path).await;
        assert_problem(r, 404, "not_found").await;
    }
}

#[tokio::test]
async fn wrong_method_is_a_405_problem_with_allow() {
    let app = app().await;
    let r = app.client.post(app.url("/healthz")).send().await.unwrap();
    let allow = r
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_problem(r, 405, "method_not_allowed").await;
    assert!(allow.unwrap_or_default().contains("GET"));
    let r = app
        .client
        .delete(app.url("/test/echo"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn one_mebibyte_body_is_a_413_problem() {
    let app = app().await;
    let big = format!(r#"{{"name":"{}","count":1}}"#, "a".repeat(1024 * 1024));
    let r = post_json(&app, "/test/echo", &big).await;
    assert_problem(r, 413, "payload_too_large").await;
    // Without a Content-Length (chunked), the limit holds too.
    let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(big.into_bytes())]);
    let r = app
        .client
        .post(app.url("/test/echo"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_problem(r, 413, "payload_too_large").await;
    // Just under the limit still works.
    let fits = format!(r#"{{"name":"{}","count":1}}"#, "a".repeat(60 * 1024));
    assert_eq!(post_json(&app, "/test/echo", &fits).await.status(), 200);
}

#[tokio::test]
async fn wrong_or_missing_content_type_is_a_415_problem() {
    let app = app().await;
    let body = r#"{"name":"x","count":1}"#;
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut req = app.client.post(app.url("/test/echo")).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        assert_problem(req.send().await.unwrap(), 415, "unsupported_media_type").await;
    }
}

#[tokio::test]
async fn malformed_json_wrong_types_and_unknown_fields_are_400_malformed_request() {
    let app = app().await;
    let cases = [
        "{not json",
        "",
        r#"{"name":"x","count":1"#,
        r#"{"name":"x","count":"one"}"#,
        r#"{"name":"x","count":-1}"#,
        r#"{"name":"x"}"#,
        r#"{"name":"x","count":1,"admin":true}"#,
        "[1,2,3]",
        "\"\\ud800\"",
    ];
    for body in cases {
        let r = post_json(&app, "/test/echo", body).await;
        let problem = assert_problem(r, 400, "malformed_request").await;
        assert!(problem.get("errors").is_none());
    }
    // Invalid UTF-8 is malformed too.
    let r = app
        .client
        .post(app.url("/test/echo"))
        .header("content-type", "application/json")
        .body(vec![b'{', b'"', b'n', 0xff, 0xfe, b'"', b':', b'1', b'}'])
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "malformed_request").await;
    // The unknown field is named; a rejected value is never echoed.
    let p = assert_problem(
        post_json(&app, "/test/echo", r#"{"name":"x","count":1,"admin":true}"#).await,
        400,
        "malformed_request",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("admin"));
    let p = assert_problem(
        post_json(&app, "/test/echo", r#"{"name":"x","count":"hunter2"}"#).await,
        400,
        "malformed_request",
    )
    .await;
    assert!(!p.to_string().contains("hunter2"));
}

#[tokio::test]
async fn valid_json_round_trips_with_utf8_content_type() {
    let app = app().await;
    let r = post_json(&app, "/test/echo", r#"{"name":"Zoë 用户","count":3}"#).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["name"], "Zoë 用户");
}

#[tokio::test]
async fn a_panic_is_a_bare_500_problem_and_the_server_keeps_serving() {
    let app = app().await;
    let r = app.get("/test/panic").await;
    let body = assert_problem(r, 500, "internal").await;
    assert_no_internals(&body.to_string());
    assert!(!body.to_string().contains("secret internal state"));
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn a_request_over_the_timeout_is_a_503_problem() {
    let app = TestApp::builder()
        .routes(probes::routes())
        .configure(|c| c.http.request_timeout_ms = 100)
        .spawn()
        .await;
    let r = app.get("/test/slow").await;
    assert_problem(r, 503, "unavailable").await;
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn only_utf8_json_is_json() {
    let app = app().await;
    let body = r#"{"name":"x","count":1}"#;
    for ct in [
        "application/json; charset=iso-8859-1",
        "application/json; charset=utf-16",
        "application/evil+json",
        "application/vnd.api+json",
        "application/json; boundary=x",
        "application/jsonx",
        "text/json",
    ] {
        let r = app
            .client
            .post(app.url("/test/echo"))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_problem(r, 415, "unsupported_media_type").await;
    }
    for ct in [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/json;charset=\"UTF-8\"",
    ] {
        let r = app
            .client
            .post(app.url("/test/echo"))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{ct}");
    }
}

/// `POST /v1/logout {"all_sessions": true}` whose body has no length: over
/// h2c (HTTP/2 DATA frames only) and HTTP/1.1 chunked. The body must be read,
/// not taken for absent: every session ends.
#[tokio::test]
async fn a_body_without_content_length_is_read_on_http2_and_chunked() {
    let app = TestApp::builder()
        .configure(|c| c.rate_limit.enabled = false)
        .spawn()
        .await;
    let password = "correct horse battery staple";
    app.create_user("ada@example.com", password, true).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "really h2c");
    for client in [h2, app.client.clone()] {
        let token = |r: serde_json::Value| r["access_token"].as_str().unwrap().to_owned();
        let current = token(
            app.login("ada@example.com", password)
                .await
                .json()
                .await
                .unwrap(),
        );
        let other = token(
            app.login("ada@example.com", password)
                .await
                .json()
                .await
                .unwrap(),
        );
        let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(
            br#"{"all_sessions": true}"#.to_vec(),
        )]);
        let r = client
            .post(app.url("/v1/logout"))
            .bearer_auth(&current)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let r = app.get_as("/v1/me", &other).await;
        assert_problem(r, 401, "unauthorized").await;
        // And a body the extractor must refuse is refused, not ignored.
        let current = token(
            app.login("ada@example.com", password)
                .await
                .json()
                .await
                .unwrap(),
        );
        let stream = futures::stream::iter(vec![Ok::<_, std::io::Error>(
            br#"{"all_sessions": "yes"}"#.to_vec(),
        )]);
        let r = client
            .post(app.url("/v1/logout"))
            .bearer_auth(&current)
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .unwrap();
        assert_problem(r, 400, "malformed_request").await;
    }
}

/// Oversized request lines and headers are answered by the application, as
/// problems with a request id, not by hyper's bare status line.
#[tokio::test]
async fn oversized_uris_and_headers_are_problems() {
    let app = app().await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for client in [app.client.clone(), h2] {
        let long = format!("/v1/me?x={}", "a".repeat(9 * 1024));
        let r = client.get(app.url(&long)).send().await.unwrap();
        assert_problem(r, 414, "uri_too_long").await;
        let mut many = client.get(app.url("/healthz"));
        for i in 0..150 {
            many = many.header(format!("x-filler-{i}"), "1");
        }
        assert_problem(many.send().await.unwrap(), 431, "header_fields_too_large").await;
        let big = client
            .get(app.url("/healthz"))
            .header("x-big", "b".repeat(40 * 1024))
            .send()
            .await
            .unwrap();
        assert_problem(big, 431, "header_fields_too_large").await;
        // Within the limits all is well.
        let r = client
            .get(app.url("/healthz"))
            .header("x-big", "b".repeat(8 * 1024))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}
