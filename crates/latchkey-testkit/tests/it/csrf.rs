//! `GET /v1/csrf` (a reloaded page gets its session's CSRF token back from the
//! session or the refresh cookie) and what `csrf_failed` says about the check
//! that refused a request.

use std::sync::Arc;

use latchkey_core::clock::ManualClock;
use latchkey_testkit::app::TestApp;
use reqwest::Method;
use serde_json::{json, Value};
use time::macros::datetime;

use crate::cookies::{
    cookie_refresh, patch_name, request, sign_in, Browser, CSRF, EMAIL, PASSWORD, REFRESH, SESSION,
};
use crate::support::assert_problem;

const APP_ORIGIN: &str = "https://app.example.com";

async fn get_csrf(app: &TestApp, cookie: &str) -> reqwest::Response {
    request(app, Method::GET, "/v1/csrf", cookie, None, None)
        .send()
        .await
        .unwrap()
}

async fn token_of(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    body["csrf_token"].as_str().unwrap().to_owned()
}

fn only_session(b: &Browser) -> String {
    format!("{SESSION}={}", b.session)
}

fn only_refresh(b: &Browser) -> String {
    format!("{REFRESH}={}", b.refresh)
}

#[tokio::test]
async fn either_cookie_gives_back_the_sign_in_csrf_token_without_rotating_anything() {
    let app = TestApp::spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let browser = sign_in(&app).await;
    assert_eq!(browser.body["csrf_token"], browser.csrf.as_str());

    for cookie in [
        only_session(&browser),
        only_refresh(&browser),
        browser.cookie_header(),
    ] {
        assert_eq!(
            token_of(get_csrf(&app, &cookie).await).await,
            browser.csrf,
            "{cookie}"
        );
    }
    // The recovered token passes the CSRF check (a GET needed none).
    let r = patch_name(&app, &browser, Some(&app.base_url), Some(&browser.csrf)).await;
    assert_eq!(r.status(), 200);
    // The refresh token was only looked up: it still rotates (no reuse alarm).
    let r = cookie_refresh(
        &app,
        &browser.refresh,
        Some(&app.base_url),
        Some(&browser.csrf),
    )
    .await;
    assert_eq!(r.status(), 200);
    // Another session has another token.
    let other = sign_in(&app).await;
    assert_ne!(
        token_of(get_csrf(&app, &only_refresh(&other)).await).await,
        browser.csrf
    );
}

#[tokio::test]
async fn the_refresh_cookie_answers_once_the_access_cookie_has_expired() {
    let clock = ManualClock::new(datetime!(2026-06-01 10:00 UTC));
    let app = TestApp::builder()
        .clock(Arc::new(clock.clone()))
        .spawn()
        .await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let browser = sign_in(&app).await;
    clock.advance(time::Duration::minutes(20));
    assert_problem(
        get_csrf(&app, &only_session(&browser)).await,
        401,
        "unauthorized",
    )
    .await;
    // The browser sends both; the expired access cookie falls back to the refresh one.
    assert_eq!(
        token_of(get_csrf(&app, &browser.cookie_header()).await).await,
        browser.csrf
    );
    // Past the idle timeout the refresh cookie is dead too.
    clock.advance(time::Duration::days(60));
    assert_problem(
        get_csrf(&app, &browser.cookie_header()).await,
        401,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn forged_spent_revoked_or_missing_cookies_and_bearer_tokens_are_unauthorized() {
    let app = TestApp::spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let browser = sign_in(&app).await;
    let forged_refresh = format!("lk_rt_{}", "A".repeat(43));
    // The access token with one character of its signature changed.
    let mut forged_access = browser.session.clone().into_bytes();
    let at = forged_access.len() - 10;
    forged_access[at] = if forged_access[at] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let forged_access = String::from_utf8(forged_access).unwrap();
    let refused = [
        String::new(),
        format!("{SESSION}=not-a-token"),
        format!("{SESSION}={forged_access}"),
        format!("{REFRESH}={forged_refresh}"),
        format!("{REFRESH}=lk_rt_short"),
        format!("{REFRESH}={}", "x".repeat(5000)),
        // Only the readable CSRF cookie: it authenticates nothing.
        format!("{CSRF}={}", browser.csrf),
        // Cookie tossing: the same name twice counts as none.
        format!("{SESSION}={s}; {SESSION}={s}", s = browser.session),
    ];
    for cookie in &refused {
        assert_problem(get_csrf(&app, cookie).await, 401, "unauthorized").await;
    }
    // A bearer token is not cookie mode: bearer clients need no CSRF token.
    let r = app
        .get_as("/v1/csrf", browser.body["access_token"].as_str().unwrap())
        .await;
    assert_problem(r, 401, "unauthorized").await;

    // A rotated (spent) refresh token names no session.
    let spent = browser.refresh.clone();
    let r = cookie_refresh(&app, &spent, Some(&app.base_url), Some(&browser.csrf)).await;
    assert_eq!(r.status(), 200);
    assert_problem(
        get_csrf(&app, &format!("{REFRESH}={spent}")).await,
        401,
        "unauthorized",
    )
    .await;

    // After logout neither cookie of that session works.
    let fresh = sign_in(&app).await;
    let r = request(
        &app,
        Method::POST,
        "/v1/logout",
        &fresh.cookie_header(),
        Some(&app.base_url),
        Some(&fresh.csrf),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    for cookie in [only_session(&fresh), only_refresh(&fresh)] {
        assert_problem(get_csrf(&app, &cookie).await, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn with_cookie_mode_off_there_is_no_token_to_recover() {
    let app = TestApp::spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let browser = sign_in(&app).await;
    let off = TestApp::builder()
        .configure(|c| c.cookies.enabled = false)
        .spawn()
        .await;
    assert_problem(
        get_csrf(&off, &browser.cookie_header()).await,
        401,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn cors_decides_which_origins_may_read_the_token() {
    let app = TestApp::builder()
        .configure(|c| c.cors.allowed_origins = vec![APP_ORIGIN.into()])
        .spawn()
        .await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let browser = sign_in(&app).await;
    let read = |origin: &'static str| {
        request(
            &app,
            Method::GET,
            "/v1/csrf",
            &browser.cookie_header(),
            Some(origin),
            None,
        )
        .send()
    };
    let r = read(APP_ORIGIN).await.unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], APP_ORIGIN);
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    assert_eq!(token_of(r).await, browser.csrf);
    let r = read("https://evil.example").await.unwrap();
    assert!(
        r.headers().get("access-control-allow-origin").is_none(),
        "a foreign page's browser may not read the answer"
    );
}

#[tokio::test]
async fn csrf_failed_says_which_check_refused_and_logs_the_refused_origin() {
    let logs = crate::support::captured_logs();
    let app = TestApp::builder()
        .configure(|c| c.cors.allowed_origins = vec![APP_ORIGIN.into()])
        .spawn()
        .await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let browser = sign_in(&app).await;

    let r = patch_name(
        &app,
        &browser,
        Some("https://refused-origin.example"),
        Some(&browser.csrf),
    )
    .await;
    let request_id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = assert_problem(r, 403, "csrf_failed").await;
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("Origin"), "{detail}");
    assert!(detail.contains("cors.allowed_origins"), "{detail}");
    assert!(!detail.contains("X-CSRF-Token"), "{detail}");

    for token in [None, Some("wrong")] {
        let r = patch_name(&app, &browser, Some(APP_ORIGIN), token).await;
        let body = assert_problem(r, 403, "csrf_failed").await;
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("X-CSRF-Token"), "{detail}");
        assert!(detail.contains("GET /v1/csrf"), "{detail}");
        assert!(!detail.contains("cors.allowed_origins"), "{detail}");
    }

    // A cookie-mode login from a foreign page is an origin refusal too.
    let r = app
        .client
        .post(app.url("/v1/login"))
        .header("origin", "https://evil.example")
        .json(&json!({"email": EMAIL, "password": PASSWORD, "mode": "cookie"}))
        .send()
        .await
        .unwrap();
    let body = assert_problem(r, 403, "csrf_failed").await;
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("cors.allowed_origins"));

    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains(&request_id) && l.contains("not allowed"))
        .unwrap_or_else(|| panic!("no refusal line for {request_id}"));
    assert!(line.contains("https://refused-origin.example"), "{line}");
    assert!(line.contains("\"DEBUG\""), "{line}");
}

#[tokio::test]
async fn the_openapi_document_describes_the_endpoint() {
    let app = TestApp::spawn().await;
    let doc: Value = app.get("/v1/openapi.json").await.json().await.unwrap();
    let op = &doc["paths"]["/v1/csrf"]["get"];
    assert!(op["responses"]["200"].is_object(), "{op}");
    assert!(op["responses"]["401"].is_object(), "{op}");
    assert_eq!(op["security"][0]["cookie"], json!([]));
    assert!(doc["components"]["schemas"]["CsrfBody"]["properties"]["csrf_token"].is_object());
}
