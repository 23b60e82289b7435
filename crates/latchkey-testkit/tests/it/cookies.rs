//! Cookie mode end to end: the three cookies and their flags, cookie
//! authentication, the CSRF defence (origin + signed double-submit token) on
//! every unsafe cookie-authenticated request, cookie refresh and logout.

use std::collections::HashMap;

use latchkey_testkit::app::TestApp;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{assert_problem, token_refresh};

pub(crate) const EMAIL: &str = "carol@example.com";
pub(crate) const PASSWORD: &str = "correct horse battery staple";
pub(crate) const SESSION: &str = "__Host-lk_session";
pub(crate) const REFRESH: &str = "__Host-lk_refresh";
pub(crate) const CSRF: &str = "__Host-lk_csrf";

/// One `Set-Cookie` header, split into its value and attributes.
#[derive(Debug)]
struct SetCookie {
    value: String,
    attributes: Vec<String>,
}

impl SetCookie {
    fn has(&self, attribute: &str) -> bool {
        self.attributes
            .iter()
            .any(|a| a.eq_ignore_ascii_case(attribute))
    }

    fn max_age(&self) -> i64 {
        self.attributes
            .iter()
            .find_map(|a| a.strip_prefix("Max-Age="))
            .unwrap()
            .parse()
            .unwrap()
    }
}

fn set_cookies(headers: &HeaderMap) -> HashMap<String, SetCookie> {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| {
            let text = v.to_str().unwrap();
            let mut parts = text.split(';').map(str::trim);
            let (name, value) = parts.next().unwrap().split_once('=').unwrap();
            let attributes = parts.map(str::to_owned).collect();
            (
                name.to_owned(),
                SetCookie {
                    value: value.to_owned(),
                    attributes,
                },
            )
        })
        .collect()
}

/// A signed-in browser: its cookies and CSRF token.
pub(crate) struct Browser {
    pub(crate) session: String,
    pub(crate) refresh: String,
    pub(crate) csrf: String,
    pub(crate) body: Value,
}

impl Browser {
    pub(crate) fn cookie_header(&self) -> String {
        format!(
            "{SESSION}={}; {REFRESH}={}; {CSRF}={}",
            self.session, self.refresh, self.csrf
        )
    }
}

async fn app_with_user() -> TestApp {
    let app = TestApp::spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    app
}

async fn cookie_login(app: &TestApp, origin: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/login"))
        .header("origin", origin)
        .json(&json!({"email": EMAIL, "password": PASSWORD, "mode": "cookie"}))
        .send()
        .await
        .unwrap()
}

pub(crate) async fn sign_in(app: &TestApp) -> Browser {
    let r = cookie_login(app, &app.base_url).await;
    assert_eq!(r.status(), 200);
    let cookies = set_cookies(r.headers());
    let body: Value = r.json().await.unwrap();
    Browser {
        session: cookies[SESSION].value.clone(),
        refresh: cookies[REFRESH].value.clone(),
        csrf: cookies[CSRF].value.clone(),
        body,
    }
}

/// A cookie-authenticated request with the given origin and CSRF headers.
pub(crate) fn request(
    app: &TestApp,
    method: Method,
    path: &str,
    cookie: &str,
    origin: Option<&str>,
    csrf: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut r = app
        .client
        .request(method, app.url(path))
        .header("cookie", cookie);
    if let Some(origin) = origin {
        r = r.header("origin", origin);
    }
    if let Some(csrf) = csrf {
        r = r.header("x-csrf-token", csrf);
    }
    r
}

pub(crate) async fn patch_name(
    app: &TestApp,
    browser: &Browser,
    origin: Option<&str>,
    csrf: Option<&str>,
) -> reqwest::Response {
    request(
        app,
        Method::PATCH,
        "/v1/me",
        &browser.cookie_header(),
        origin,
        csrf,
    )
    .json(&json!({"name": "Carol"}))
    .send()
    .await
    .unwrap()
}

#[tokio::test]
async fn a_cookie_login_sets_three_strict_cookies_and_keeps_the_refresh_token_out_of_the_body() {
    let app = app_with_user().await;
    let r = cookie_login(&app, &app.base_url).await;
    assert_eq!(r.status(), 200);
    let cookies = set_cookies(r.headers());
    let body: Value = r.json().await.unwrap();

    assert!(body.get("refresh_token").is_none(), "{body}");
    let csrf = body["csrf_token"].as_str().unwrap();
    assert_eq!(csrf.len(), 43);
    assert!(body["access_token"].as_str().is_some());
    assert_eq!(body["token_type"], "Bearer");

    assert_eq!(cookies.len(), 4, "{cookies:?}");
    assert!(
        cookies["__Host-lk_device"].has("HttpOnly"),
        "the lockout device cookie"
    );
    for name in [SESSION, REFRESH, CSRF, "__Host-lk_device"] {
        let c = &cookies[name];
        for attribute in ["Secure", "SameSite=Strict", "Path=/"] {
            assert!(c.has(attribute), "{name} lacks {attribute}: {c:?}");
        }
        assert!(
            !c.attributes.iter().any(|a| a.starts_with("Domain")),
            "__Host- cookies have no Domain"
        );
    }
    assert!(cookies[SESSION].has("HttpOnly"));
    assert!(cookies[REFRESH].has("HttpOnly"));
    assert!(!cookies[CSRF].has("HttpOnly"), "the page must read it");
    assert_eq!(
        cookies[SESSION].value,
        body["access_token"].as_str().unwrap()
    );
    assert!(cookies[REFRESH].value.starts_with("lk_rt_"));
    assert_eq!(cookies[REFRESH].value.len(), 49);
    assert_eq!(cookies[CSRF].value, csrf);
    assert_eq!(
        cookies[SESSION].max_age(),
        body["expires_in"].as_i64().unwrap()
    );
    assert_eq!(
        cookies[REFRESH].max_age(),
        body["refresh_expires_in"].as_i64().unwrap()
    );
}

#[tokio::test]
async fn the_session_cookie_authenticates_reads_without_a_csrf_token() {
    let app = app_with_user().await;
    let browser = sign_in(&app).await;
    let r = request(
        &app,
        Method::GET,
        "/v1/me",
        &browser.cookie_header(),
        None,
        None,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["email"], EMAIL);

    // Sessions list marks the cookie session as current.
    let r = request(
        &app,
        Method::GET,
        "/v1/me/sessions",
        &browser.cookie_header(),
        None,
        None,
    )
    .send()
    .await
    .unwrap();
    let items: Value = r.json().await.unwrap();
    assert_eq!(items["items"][0]["current"], true);
}

#[tokio::test]
async fn bad_duplicated_or_absent_session_cookies_are_unauthorized() {
    let app = app_with_user().await;
    let browser = sign_in(&app).await;
    let tossed = format!(
        "{SESSION}={}; {SESSION}={}",
        browser.session, browser.session
    );
    for cookie in [
        String::new(),
        format!("{SESSION}="),
        format!("{SESSION}=garbage"),
        format!("{SESSION}={}x", browser.session),
        tossed,
        format!("lk_session={}", browser.session),
        format!("{REFRESH}={}", browser.refresh),
    ] {
        let r = request(&app, Method::GET, "/v1/me", &cookie, None, None)
            .send()
            .await
            .unwrap();
        assert_problem(r, 401, "unauthorized").await;
    }
    // An anonymous unsafe request learns nothing about CSRF: 401, not 403.
    let r = request(
        &app,
        Method::PATCH,
        "/v1/me",
        &format!("{SESSION}=garbage"),
        Some("https://evil.example"),
        None,
    )
    .json(&json!({"name": "x"}))
    .send()
    .await
    .unwrap();
    assert_problem(r, 401, "unauthorized").await;
}

#[tokio::test]
async fn unsafe_cookie_requests_need_an_allowed_origin_and_the_sessions_csrf_token() {
    let app = app_with_user().await;
    let browser = sign_in(&app).await;
    let other = sign_in(&app).await;
    let origin = app.base_url.as_str();
    let csrf = browser.csrf.as_str();

    let refused: [(Option<&str>, Option<&str>); 7] = [
        (Some(origin), None),
        (Some(origin), Some("")),
        (Some(origin), Some(&other.csrf)),
        (Some(origin), Some(&csrf[..42])),
        (None, Some(csrf)),
        (Some("https://evil.example"), Some(csrf)),
        (Some("null"), Some(csrf)),
    ];
    for (origin, token) in refused {
        assert_problem(
            patch_name(&app, &browser, origin, token).await,
            403,
            "csrf_failed",
        )
        .await;
    }
    // Without Origin, only Sec-Fetch-Site: same-origin vouches for the page.
    for (site, status) in [
        ("cross-site", 403),
        ("same-site", 403),
        ("none", 403),
        ("same-origin", 200),
    ] {
        let r = request(
            &app,
            Method::PATCH,
            "/v1/me",
            &browser.cookie_header(),
            None,
            Some(csrf),
        )
        .header("sec-fetch-site", site)
        .json(&json!({"name": "Carol"}))
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), status, "{site}");
    }
    // Two CSRF headers are refused even if one is right.
    let r = request(
        &app,
        Method::PATCH,
        "/v1/me",
        &browser.cookie_header(),
        Some(origin),
        Some(csrf),
    )
    .header("x-csrf-token", other.csrf.as_str())
    .json(&json!({"name": "Carol"}))
    .send()
    .await
    .unwrap();
    assert_problem(r, 403, "csrf_failed").await;

    let ok = patch_name(&app, &browser, Some(origin), Some(csrf)).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<Value>().await.unwrap()["name"], "Carol");

    // DELETE is unsafe too: ending another session needs the token.
    let path = format!(
        "/v1/me/sessions/{}",
        other.body["session_id"].as_str().unwrap()
    );
    let r = request(
        &app,
        Method::DELETE,
        &path,
        &browser.cookie_header(),
        Some(origin),
        None,
    )
    .send()
    .await
    .unwrap();
    assert_problem(r, 403, "csrf_failed").await;

    // Bearer requests are not cookie-authenticated: no CSRF token needed.
    let r = app
        .client
        .patch(app.url("/v1/me"))
        .bearer_auth(browser.body["access_token"].as_str().unwrap())
        .header("origin", "https://evil.example")
        .json(&json!({"name": "Bearer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn an_origin_allowed_by_cors_may_use_the_cookies() {
    let app = TestApp::builder()
        .configure(|c| c.cors.allowed_origins = vec!["https://app.example.com".into()])
        .spawn()
        .await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let r = cookie_login(&app, "https://APP.example.com").await;
    assert_eq!(r.status(), 200, "origins compare case-insensitively");
    let browser = sign_in(&app).await;
    let r = patch_name(
        &app,
        &browser,
        Some("https://app.example.com"),
        Some(&browser.csrf),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = patch_name(
        &app,
        &browser,
        Some("https://app.example.com.evil.example"),
        Some(&browser.csrf),
    )
    .await;
    assert_problem(r, 403, "csrf_failed").await;
}

#[tokio::test]
async fn a_cookie_login_from_a_foreign_page_is_refused() {
    let app = app_with_user().await;
    assert_problem(
        cookie_login(&app, "https://evil.example").await,
        403,
        "csrf_failed",
    )
    .await;
    let r = app
        .client
        .post(app.url("/v1/login"))
        .json(&json!({"email": EMAIL, "password": PASSWORD, "mode": "cookie"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 403, "csrf_failed").await;
    // Token mode does not involve the browser's cookies: no origin needed.
    assert_eq!(app.login(EMAIL, PASSWORD).await.status(), 200);
    // Unknown modes are malformed.
    let r = app
        .client
        .post(app.url("/v1/login"))
        .json(&json!({"email": EMAIL, "password": PASSWORD, "mode": "Cookie"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "malformed_request").await;
}

pub(crate) async fn cookie_refresh(
    app: &TestApp,
    refresh: &str,
    origin: Option<&str>,
    csrf: Option<&str>,
) -> reqwest::Response {
    request(
        app,
        Method::POST,
        "/v1/token/refresh",
        &format!("{REFRESH}={refresh}"),
        origin,
        csrf,
    )
    .send()
    .await
    .unwrap()
}

#[tokio::test]
async fn a_cookie_refresh_needs_csrf_rotates_the_cookies_and_detects_reuse() {
    let clock =
        latchkey_core::clock::ManualClock::new(time::macros::datetime!(2026-12-03 10:00 UTC));
    let app = TestApp::builder()
        .clock(std::sync::Arc::new(clock.clone()))
        .spawn()
        .await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let browser = sign_in(&app).await;
    let origin = Some(app.base_url.as_str());

    // Refused without the token or from elsewhere, and nothing is spent.
    assert_problem(
        cookie_refresh(&app, &browser.refresh, origin, None).await,
        403,
        "csrf_failed",
    )
    .await;
    assert_problem(
        cookie_refresh(
            &app,
            &browser.refresh,
            Some("https://evil.example"),
            Some(&browser.csrf),
        )
        .await,
        403,
        "csrf_failed",
    )
    .await;

    let r = cookie_refresh(&app, &browser.refresh, origin, Some(&browser.csrf)).await;
    assert_eq!(r.status(), 200);
    let cookies = set_cookies(r.headers());
    let body: Value = r.json().await.unwrap();
    assert!(body.get("refresh_token").is_none());
    assert_eq!(
        body["csrf_token"],
        browser.csrf.as_str(),
        "bound to the session"
    );
    assert_eq!(body["session_id"], browser.body["session_id"]);
    let next = cookies[REFRESH].value.clone();
    assert_ne!(next, browser.refresh);
    assert!(cookies[REFRESH].has("HttpOnly"));
    assert_eq!(cookies[CSRF].value, browser.csrf);
    assert_eq!(
        cookies[SESSION].value,
        body["access_token"].as_str().unwrap()
    );

    // Empty JSON object works like no body.
    let r = request(
        &app,
        Method::POST,
        "/v1/token/refresh",
        &format!("{REFRESH}={next}"),
        origin,
        Some(&browser.csrf),
    )
    .json(&json!({}))
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let latest = set_cookies(r.headers())[REFRESH].value.clone();

    // The spent cookie again, after the grace of concurrent tabs: reuse, the
    // session ends and the cookies are cleared.
    clock.advance(time::Duration::seconds(11));
    let r = cookie_refresh(&app, &browser.refresh, origin, Some(&browser.csrf)).await;
    let cleared = set_cookies(r.headers());
    assert_eq!(cleared.len(), 3);
    assert!(cleared
        .values()
        .all(|c| c.value.is_empty() && c.max_age() == 0));
    assert_problem(r, 401, "invalid_token").await;
    assert_problem(
        cookie_refresh(&app, &latest, origin, Some(&browser.csrf)).await,
        401,
        "invalid_token",
    )
    .await;

    // No body token and no cookie: invalid_token.
    let r = app
        .client
        .post(app.url("/v1/token/refresh"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "invalid_token").await;
}

/// Two tabs of one browser refresh at once with the same refresh cookie: the
/// loser must not sign the user out, nor delete the cookies the winner set.
#[tokio::test]
async fn two_tabs_refreshing_at_once_keep_the_session_and_its_cookies() {
    let clock =
        latchkey_core::clock::ManualClock::new(time::macros::datetime!(2026-12-03 10:00 UTC));
    let app = TestApp::builder()
        .clock(std::sync::Arc::new(clock.clone()))
        .spawn()
        .await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let browser = sign_in(&app).await;
    let origin = Some(app.base_url.as_str());
    let csrf = Some(browser.csrf.as_str());
    let (a, b) = tokio::join!(
        cookie_refresh(&app, &browser.refresh, origin, csrf),
        cookie_refresh(&app, &browser.refresh, origin, csrf),
    );
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    let (a_cookies, b_cookies) = (set_cookies(a.headers()), set_cookies(b.headers()));
    // Exactly one rotated the refresh cookie; neither deleted anything.
    let rotated: Vec<&HashMap<String, SetCookie>> = [&a_cookies, &b_cookies]
        .into_iter()
        .filter(|c| c.contains_key(REFRESH))
        .collect();
    assert_eq!(rotated.len(), 1, "one winner");
    for cookies in [&a_cookies, &b_cookies] {
        assert!(cookies
            .values()
            .all(|c| !c.value.is_empty() && c.max_age() > 0));
        assert!(
            cookies.contains_key(SESSION),
            "both get a fresh access token"
        );
    }
    let winner = rotated[0][REFRESH].value.clone();
    for r in [a, b] {
        let body: Value = r.json().await.unwrap();
        assert!(body.get("refresh_token").is_none());
        assert_eq!(body["csrf_token"], browser.csrf.as_str());
        assert_eq!(body["session_id"], browser.body["session_id"]);
        let access = body["access_token"].as_str().unwrap();
        assert_eq!(app.get_as("/v1/me", access).await.status(), 200);
    }
    // The session goes on with the winner's cookie.
    let r = cookie_refresh(&app, &winner, origin, csrf).await;
    assert_eq!(r.status(), 200);
    let latest = set_cookies(r.headers())[REFRESH].value.clone();

    // The grace answer still needs the session's CSRF token and origin.
    assert_problem(
        cookie_refresh(&app, &browser.refresh, origin, None).await,
        403,
        "csrf_failed",
    )
    .await;
    assert_problem(
        cookie_refresh(&app, &browser.refresh, Some("https://evil.example"), csrf).await,
        403,
        "csrf_failed",
    )
    .await;
    // Past the grace the first cookie is reuse again: the family is revoked.
    clock.advance(time::Duration::seconds(11));
    assert_problem(
        cookie_refresh(&app, &browser.refresh, origin, csrf).await,
        401,
        "invalid_token",
    )
    .await;
    assert_problem(
        cookie_refresh(&app, &latest, origin, csrf).await,
        401,
        "invalid_token",
    )
    .await;
}

/// Token mode keeps no grace by default: presenting a spent token revokes.
#[tokio::test]
async fn token_mode_reuse_still_revokes_at_once() {
    let app = app_with_user().await;
    let login: Value = app.login(EMAIL, PASSWORD).await.json().await.unwrap();
    let refresh = |token: Value| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/v1/token/refresh"))
                .json(&json!({ "refresh_token": token }))
                .send()
                .await
                .unwrap()
        }
    };
    let r = refresh(login["refresh_token"].clone()).await;
    assert_eq!(r.status(), 200);
    let next: Value = r.json().await.unwrap();
    assert_problem(
        refresh(login["refresh_token"].clone()).await,
        401,
        "invalid_token",
    )
    .await;
    assert_problem(
        refresh(next["refresh_token"].clone()).await,
        401,
        "invalid_token",
    )
    .await;
}

/// A stolen token-mode refresh token gets nothing from the cookie path: no
/// CSRF token from `GET /v1/csrf` (as a refresh cookie, nor its access token
/// as a session cookie), and replayed as a cookie within the tabs' grace after
/// its owner refreshed, it is reuse — the family is revoked — not a fresh
/// access token.
#[tokio::test]
async fn a_token_mode_refresh_token_gets_nothing_from_the_cookie_grace() {
    let app = app_with_user().await;
    let login: Value = app.login(EMAIL, PASSWORD).await.json().await.unwrap();
    let stolen = login["refresh_token"].as_str().unwrap().to_owned();
    let access = login["access_token"].as_str().unwrap();
    for cookie in [format!("{REFRESH}={stolen}"), format!("{SESSION}={access}")] {
        let r = request(&app, Method::GET, "/v1/csrf", &cookie, None, None)
            .send()
            .await
            .unwrap();
        assert_problem(r, 401, "unauthorized").await;
    }
    // The owner refreshes; the thief replays the spent token as a cookie at once.
    let r = token_refresh(&app, &stolen).await;
    assert_eq!(r.status(), 200);
    let next: Value = r.json().await.unwrap();
    let origin = Some(app.base_url.as_str());
    let r = cookie_refresh(&app, &stolen, origin, None).await;
    assert_problem(r, 401, "invalid_token").await;
    // Reuse: the owner's new token died with the family.
    let r = token_refresh(&app, next["refresh_token"].as_str().unwrap()).await;
    assert_problem(r, 401, "invalid_token").await;
}

#[tokio::test]
async fn a_cookie_logout_needs_csrf_clears_the_cookies_and_ends_the_session() {
    let app = app_with_user().await;
    let browser = sign_in(&app).await;
    let cookie = browser.cookie_header();
    let origin = Some(app.base_url.as_str());
    let r = request(&app, Method::POST, "/v1/logout", &cookie, origin, None)
        .send()
        .await
        .unwrap();
    assert_problem(r, 403, "csrf_failed").await;

    let r = request(
        &app,
        Method::POST,
        "/v1/logout",
        &cookie,
        origin,
        Some(&browser.csrf),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 204);
    let cleared = set_cookies(r.headers());
    for name in [SESSION, REFRESH, CSRF] {
        assert_eq!(cleared[name].value, "", "{name}");
        assert_eq!(cleared[name].max_age(), 0, "{name}");
    }
    let r = request(&app, Method::GET, "/v1/me", &cookie, None, None)
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "unauthorized").await;
    assert_problem(
        cookie_refresh(&app, &browser.refresh, origin, Some(&browser.csrf)).await,
        401,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn cookie_names_and_the_secure_flag_are_configurable_and_cookie_mode_can_be_off() {
    let app = TestApp::builder()
        .configure(|c| {
            c.cookies.secure = false;
            c.cookies.session_name = "dev_session".into();
            c.cookies.refresh_name = "dev_refresh".into();
            c.cookies.csrf_name = "dev_csrf".into();
            c.cookies.device_name = "dev_device".into();
        })
        .spawn()
        .await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let r = cookie_login(&app, &app.base_url).await;
    assert_eq!(r.status(), 200);
    let cookies = set_cookies(r.headers());
    let mut names: Vec<&str> = cookies.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["dev_csrf", "dev_device", "dev_refresh", "dev_session"]
    );
    assert!(cookies.values().all(|c| !c.has("Secure")));
    let r = request(
        &app,
        Method::GET,
        "/v1/me",
        &format!("dev_session={}", cookies["dev_session"].value),
        None,
        None,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);

    let app = TestApp::builder()
        .configure(|c| c.cookies.enabled = false)
        .spawn()
        .await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let body = assert_problem(
        cookie_login(&app, &app.base_url).await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "mode");
    // A session cookie carrying a perfectly valid token is ignored.
    let token: Value = app.login(EMAIL, PASSWORD).await.json().await.unwrap();
    let r = request(
        &app,
        Method::GET,
        "/v1/me",
        &format!("{SESSION}={}", token["access_token"].as_str().unwrap()),
        None,
        None,
    )
    .send()
    .await
    .unwrap();
    assert_problem(r, 401, "unauthorized").await;
}
