//! Rate limits through the API: per IP, per address (whether or not an account
//! has it), per user and per session; the 429 problem with `Retry-After`; the
//! `RateLimit-Policy` / `RateLimit` headers; GCRA's smooth refill; probes exempt.

use std::sync::Arc;

use latchkey_core::clock::ManualClock;
use latchkey_server::config::{LimitKey, RateLimitRule, RouteGroup};
use latchkey_testkit::app::TestApp;
use latchkey_testkit::redis_server::RedisServer;
use serde_json::{json, Value};
use time::macros::datetime;

use crate::support::{assert_problem, post_from};

const PASSWORD: &str = "correct horse battery staple";

async fn login_as(app: &TestApp, email: &str, from: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/login"))
        .header("x-forwarded-for", from)
        .json(&json!({"email": email, "password": "wrong password here"}))
        .send()
        .await
        .unwrap()
}

fn trusting_loopback(c: &mut latchkey_server::config::Config) {
    c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
}

#[tokio::test]
async fn logins_are_limited_per_ip_with_a_retry_after_and_headers() {
    let app = TestApp::builder()
        .configure(trusting_loopback)
        .spawn()
        .await;
    for i in 0..10 {
        let r = login_as(&app, &format!("user{i}@example.com"), "203.0.113.7").await;
        assert_eq!(r.status(), 401, "attempt {i}");
        let policy = r.headers()["ratelimit-policy"].to_str().unwrap().to_owned();
        assert_eq!(
            policy,
            "\"login-ip\";q=10;w=60, \"login-identifier\";q=10;w=60"
        );
        let state = r.headers()["ratelimit"].to_str().unwrap().to_owned();
        assert!(
            state.starts_with(&format!("\"login-ip\";r={};t=", 9 - i)),
            "{state}"
        );
    }
    let r = login_as(&app, "user10@example.com", "203.0.113.7").await;
    assert_eq!(r.headers()["retry-after"], "6");
    let body = assert_problem(r, 429, "rate_limited").await;
    assert_eq!(body["retry_after"], 6);
    // Another client is not affected.
    assert_eq!(
        login_as(&app, "user10@example.com", "198.51.100.1")
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn an_address_is_limited_across_ips_identically_whether_or_not_it_exists() {
    let app = TestApp::builder()
        .configure(trusting_loopback)
        // The limit is the subject here (the lockout would answer 423 first).
        .configure(|c| c.lockout.threshold = 0)
        .spawn()
        .await;
    app.create_user("known@example.com", PASSWORD, true).await;
    let mut bodies = Vec::new();
    for email in ["known@example.com", "unknown@example.com"] {
        for i in 0..10 {
            let r = login_as(&app, email, &format!("192.0.2.{i}")).await;
            assert_eq!(r.status(), 401);
        }
        // Case and spaces do not make a new identifier.
        let r = login_as(&app, &format!("  {}", email.to_uppercase()), "192.0.2.99").await;
        let mut body = assert_problem(r, 429, "rate_limited").await;
        body["request_id"] = Value::Null;
        bodies.push(body);
    }
    assert_eq!(bodies[0], bodies[1], "no enumeration through the limiter");
}

#[tokio::test]
async fn quota_refills_smoothly_not_at_a_window_edge() {
    let clock = ManualClock::new(datetime!(2026-11-23 10:00:00 UTC));
    let app = TestApp::builder()
        .configure(trusting_loopback)
        .clock(Arc::new(clock.clone()))
        .spawn()
        .await;
    for i in 0..10 {
        login_as(&app, &format!("u{i}@example.com"), "203.0.113.9").await;
    }
    let next = |i: u32| login_as_owned(&app, i);
    assert_eq!(next(100).await, 429);
    clock.advance(time::Duration::seconds(5));
    assert_eq!(next(101).await, 429, "5 s: not yet");
    clock.advance(time::Duration::seconds(1));
    assert_eq!(next(102).await, 401, "6 s (60 s / 10): one more");
    assert_eq!(next(103).await, 429, "and only one");
    clock.advance(time::Duration::seconds(60));
    for i in 0..10 {
        assert_eq!(
            next(200 + i).await,
            401,
            "a full minute idle: the whole burst again"
        );
    }
}

async fn login_as_owned(app: &TestApp, i: u32) -> u16 {
    login_as(app, &format!("n{i}@example.com"), "203.0.113.9")
        .await
        .status()
        .as_u16()
}

fn rules(rules: Vec<RateLimitRule>) -> impl FnOnce(&mut latchkey_server::config::Config) {
    move |c| c.rate_limit.rules = rules
}

fn rule(name: &str, route: RouteGroup, key: LimitKey, limit: u32) -> RateLimitRule {
    RateLimitRule {
        name: name.into(),
        route,
        key,
        limit,
        window_seconds: 60,
    }
}

#[tokio::test]
async fn authenticated_reads_count_per_user_and_refreshes_per_session() {
    let app = TestApp::builder()
        .configure(rules(vec![
            rule("reads", RouteGroup::Read, LimitKey::User, 3),
            rule("refreshes", RouteGroup::Refresh, LimitKey::Session, 2),
        ]))
        .spawn()
        .await;
    app.create_user("a@example.com", PASSWORD, true).await;
    app.create_user("b@example.com", PASSWORD, true).await;
    let login = |email: &'static str| {
        let app = &app;
        async move {
            let body: Value = app.login(email, PASSWORD).await.json().await.unwrap();
            body
        }
    };
    let a = login("a@example.com").await;
    let b = login("b@example.com").await;
    let me = |token: String| {
        let app = &app;
        async move {
            app.client
                .get(app.url("/v1/me"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    let a_token = a["access_token"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        assert_eq!(me(a_token.clone()).await.status(), 200);
    }
    let r = me(a_token.clone()).await;
    assert!(r.headers()["ratelimit-policy"]
        .to_str()
        .unwrap()
        .contains("\"reads\";q=3;w=60"));
    assert_problem(r, 429, "rate_limited").await;
    assert_eq!(
        me(b["access_token"].as_str().unwrap().to_owned())
            .await
            .status(),
        200,
        "per user"
    );
    // Writes are not reads.
    let r = app
        .client
        .patch(app.url("/v1/me"))
        .bearer_auth(&a_token)
        .json(&json!({"name": "A"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let mut token = a["refresh_token"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        let r = app
            .client
            .post(app.url("/v1/token/refresh"))
            .json(&json!({ "refresh_token": token }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        token = r.json::<Value>().await.unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    let r = app
        .client
        .post(app.url("/v1/token/refresh"))
        .json(&json!({ "refresh_token": token }))
        .send()
        .await
        .unwrap();
    assert_problem(r, 429, "rate_limited").await;
}

#[tokio::test]
async fn sign_ups_are_limited_per_ip_and_probes_never() {
    let app = TestApp::builder()
        .configure(rules(vec![
            rule("signup-ip", RouteGroup::Signup, LimitKey::Ip, 2),
            rule("default-ip", RouteGroup::Default, LimitKey::Ip, 3),
        ]))
        .spawn()
        .await;
    for i in 0..2 {
        let r = app
            .client
            .post(app.url("/v1/signup"))
            .json(&json!({"email": format!("s{i}@example.com"), "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let r = app
        .client
        .post(app.url("/v1/signup"))
        .json(&json!({"email": "s9@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 429, "rate_limited").await;
    for _ in 0..3 {
        assert_eq!(app.get("/.well-known/jwks.json").await.status(), 200);
    }
    assert_problem(app.get("/.well-known/jwks.json").await, 429, "rate_limited").await;
    for _ in 0..20 {
        assert_eq!(app.get("/healthz").await.status(), 200);
        assert_eq!(app.get("/readyz").await.status(), 200);
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("latchkey_rate_limited_total{rule=\"signup-ip\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn limits_can_be_turned_off() {
    let app = TestApp::builder()
        .configure(|c| {
            c.rate_limit.enabled = false;
            // Twelve failures for one address would lock it (lockout.rs).
            c.lockout.threshold = 0;
        })
        .spawn()
        .await;
    for i in 0..12 {
        let r = login_as(&app, "x@example.com", "203.0.113.7").await;
        assert_eq!(r.status(), 401, "attempt {i}");
        assert!(r.headers().get("ratelimit").is_none());
    }
}

fn redis_url_or_skip() -> Option<String> {
    let url = std::env::var("LATCHKEY_TEST_REDIS_URL").ok();
    if url.is_none() {
        eprintln!("skipped: LATCHKEY_TEST_REDIS_URL not set");
    }
    url
}

/// Two nodes' configuration on one Redis, isolated from other tests by a
/// fresh key prefix.
fn shared_redis(
    url: String,
    prefix: String,
    limit: u32,
) -> impl Fn(&mut latchkey_server::config::Config) + Clone {
    move |c| {
        trusting_loopback(c);
        c.redis.url = Some(url.clone());
        c.redis.key_prefix.clone_from(&prefix);
        c.rate_limit.rules = vec![rule("login-ip", RouteGroup::Login, LimitKey::Ip, limit)];
    }
}

#[tokio::test]
async fn two_nodes_on_one_redis_share_one_budget() {
    let Some(url) = redis_url_or_skip() else {
        return;
    };
    let config = shared_redis(url, format!("test-{}:", uuid::Uuid::now_v7()), 20);
    let a = TestApp::builder().configure(config.clone()).spawn().await;
    let b = TestApp::builder().configure(config).spawn().await;
    let mut admitted = 0;
    for i in 0..100 {
        let node = if i % 2 == 0 { &a } else { &b };
        let r = login_as(node, &format!("spread{i}@example.com"), "203.0.113.77").await;
        match r.status().as_u16() {
            401 => admitted += 1,
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    // The burst is 20 and the sustained rate one per 3 s: a quick run admits
    // 20, or 21 if it straddles a refill.
    assert!((20..=21).contains(&admitted), "admitted {admitted}");
}

#[tokio::test]
async fn a_redis_outage_is_served_per_policy_and_never_a_500() {
    if redis_url_or_skip().is_none() {
        return;
    }
    let mut redis = RedisServer::start();
    let with_default_rule = |prefix: &str, fail_open: bool| {
        let shared = shared_redis(redis.url(), prefix.into(), 3);
        move |c: &mut latchkey_server::config::Config| {
            shared(c);
            c.rate_limit.fail_open = fail_open;
            c.rate_limit
                .rules
                .push(rule("default-ip", RouteGroup::Default, LimitKey::Ip, 3));
        }
    };
    let open = TestApp::builder()
        .configure(with_default_rule("open:", true))
        .spawn()
        .await;
    let closed = TestApp::builder()
        .configure(with_default_rule("closed:", false))
        .spawn()
        .await;
    for app in [&open, &closed] {
        let r = login_as(app, "before@example.com", "203.0.113.5").await;
        assert_eq!(r.status(), 401);
        assert!(r.headers().get("ratelimit").is_some(), "counted in Redis");
    }
    redis.stop();
    let jwks = |app: &TestApp| {
        app.client
            .get(app.url("/.well-known/jwks.json"))
            .header("x-forwarded-for", "203.0.113.5")
            .send()
    };
    for i in 0..5 {
        let r = jwks(&open).await.unwrap();
        assert_eq!(r.status(), 200, "fail-open: served without a limit ({i})");
        let r = jwks(&closed).await.unwrap();
        let body = assert_problem(r, 503, "unavailable").await;
        assert!(body["detail"].as_str().unwrap().contains("rate limiter"));
    }
    // Sign-ins are never unlimited: each node counts them itself
    // (tests/it/redis_faults.rs has the details).
    for app in [&open, &closed] {
        for i in 0..3 {
            let r = login_as(app, &format!("o{i}@example.com"), "203.0.113.5").await;
            assert_eq!(r.status(), 401, "attempt {i}");
        }
        let r = login_as(app, "o3@example.com", "203.0.113.5").await;
        assert_problem(r, 429, "rate_limited").await;
    }
    let metrics = open.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("latchkey_rate_limiter_errors_total{backend=\"redis\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn unknown_refresh_tokens_are_limited_per_ip_and_known_ones_per_session_only() {
    // A clock that stands still: no refill while a budget is spent.
    let clock = ManualClock::new(datetime!(2026-11-23 10:00:00 UTC));
    let app = TestApp::builder()
        .configure(trusting_loopback)
        .clock(Arc::new(clock))
        .spawn()
        .await;
    app.create_user("ada@example.com", PASSWORD, true).await;
    let refresh = |token: String, from: &'static str| {
        app.client
            .post(app.url("/v1/token/refresh"))
            .header("x-forwarded-for", from)
            .json(&json!({ "refresh_token": token }))
            .send()
    };
    // Known tokens from one address: 3 sessions × 25 refreshes (each under its
    // session's 30) = 75, more than the address's 60 for unknown tokens.
    for _ in 0..3 {
        let r = app
            .client
            .post(app.url("/v1/login"))
            .header("x-forwarded-for", "203.0.113.20")
            .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let mut token = r.json::<Value>().await.unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        for i in 0..25 {
            let r = refresh(token, "203.0.113.20").await.unwrap();
            assert_eq!(r.status(), 200, "refresh {i}");
            token = r.json::<Value>().await.unwrap()["refresh_token"]
                .as_str()
                .unwrap()
                .to_owned();
        }
    }
    // Unknown tokens from the same address still have their whole budget.
    let unknown = || format!("lk_rt_{}", "A".repeat(43));
    for i in 0..60 {
        let r = refresh(unknown(), "203.0.113.20").await.unwrap();
        assert_eq!(r.status(), 401, "unknown {i}");
    }
    assert_problem(
        refresh(unknown(), "203.0.113.20").await.unwrap(),
        429,
        "rate_limited",
    )
    .await;
    // Another address has its own budget.
    assert_eq!(
        refresh(unknown(), "203.0.113.21").await.unwrap().status(),
        401
    );
}

/// Two nodes on one database and one Redis (isolated by a fresh key prefix),
/// rate limits off.
pub(crate) async fn two_nodes_on_one_redis(url: String) -> (TestApp, TestApp) {
    let prefix = format!("test-{}:", uuid::Uuid::now_v7());
    let shared = move |c: &mut latchkey_server::config::Config| {
        // One deployment: the same issuer and audience on both nodes.
        c.public_url = Some("http://auth.latchkey.test".into());
        c.rate_limit.enabled = false;
        c.redis.url = Some(url.clone());
        c.redis.key_prefix.clone_from(&prefix);
    };
    let a = TestApp::builder().configure(shared.clone()).spawn().await;
    let b = TestApp::builder()
        .configure(shared)
        .beside(&a)
        .spawn()
        .await;
    (a, b)
}

#[tokio::test]
async fn a_logout_on_one_node_takes_effect_on_the_other_before_its_cache_expires() {
    let Some(url) = redis_url_or_skip() else {
        return;
    };
    let (a, b) = two_nodes_on_one_redis(url).await;
    a.create_user("ada@example.com", PASSWORD, true).await;
    let r = a.login("ada@example.com", PASSWORD).await;
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let rename = |name: String| {
        a.client
            .patch(a.url("/v1/me"))
            .bearer_auth(&token)
            .json(&json!({ "name": name }))
            .send()
    };
    // Until B's subscription is live: with B holding the profile in its cache,
    // a change on A shows on B at once (B keeps the cached one otherwise).
    let mut live = false;
    for attempt in 0..40 {
        assert_eq!(b.get_as("/v1/me", &token).await.status(), 200);
        let name = format!("Ada {attempt}");
        assert_eq!(rename(name.clone()).await.unwrap().status(), 200);
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        let shown: Value = b.get_as("/v1/me", &token).await.json().await.unwrap();
        if shown["name"] == name.as_str() {
            live = true;
            break;
        }
    }
    assert!(live, "profile changes reach the other node");

    // B has just checked the token (live session, not denied) and remembers it
    // for 5 s; A's logout reaches it well before that.
    assert_eq!(b.get_as("/v1/me", &token).await.status(), 200);
    let checked = std::time::Instant::now();
    let r = a
        .client
        .post(a.url("/v1/logout"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let mut refused = false;
    while checked.elapsed() < std::time::Duration::from_secs(4) {
        if b.get_as("/v1/me", &token).await.status() == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        refused,
        "the other node refuses the logged-out token before its cache expires"
    );
}

/// With the default rules the lockout answers before the address's rate
/// limit (the documented 423 shows), and an attacker who then exhausts the
/// address's budget still cannot keep out a browser that signed in before:
/// with its device cookie it counts on its own key.
#[tokio::test]
async fn the_address_limit_never_shuts_out_a_known_device() {
    let app = TestApp::builder()
        .configure(trusting_loopback)
        .spawn()
        .await;
    app.create_user("owner@example.com", PASSWORD, true).await;
    let owner = |device: Option<String>, from: &'static str| {
        let app = &app;
        async move {
            let mut r = app
                .client
                .post(app.url("/v1/login"))
                .header("x-forwarded-for", from)
                .json(&json!({"email": "owner@example.com", "password": PASSWORD}));
            if let Some(device) = device {
                r = r.header("cookie", format!("__Host-lk_device={device}"));
            }
            r.send().await.unwrap()
        }
    };
    let r = owner(None, "198.51.100.50").await;
    assert_eq!(r.status(), 200);
    let device = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| {
            v.to_str()
                .ok()?
                .strip_prefix("__Host-lk_device=")
                .map(|rest| rest.split(';').next().unwrap_or_default().to_owned())
        })
        .unwrap();
    // The attacker, from many addresses: five wrong passwords, then the lock
    // (the owner's sign-in took one of the address's ten).
    let mut answers = Vec::new();
    for i in 0..9 {
        answers.push(
            login_as(&app, "owner@example.com", &format!("192.0.2.{i}"))
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(answers, [401, 401, 401, 401, 401, 423, 423, 423, 423]);
    let r = login_as(&app, "owner@example.com", "192.0.2.77").await;
    assert_problem(r, 429, "rate_limited").await;
    // The owner's browser: neither limited nor locked.
    let r = owner(Some(device), "198.51.100.50").await;
    assert_eq!(r.status(), 200);
    // Without the cookie the owner is limited like anyone.
    let r = owner(None, "198.51.100.51").await;
    assert_problem(r, 429, "rate_limited").await;
}

/// One client may not spray the password and verification flows: reset
/// tokens, or addresses for forgot and resend (each address has its own
/// budget, the client's address one for all).
#[tokio::test]
async fn password_flows_are_limited_per_client_ip() {
    let app = TestApp::builder()
        .configure(trusting_loopback)
        .spawn()
        .await;
    for i in 0..20 {
        let r = post_from(
            &app,
            "/v1/password/reset",
            "203.0.113.20",
            json!({"token": format!("lk_pr_forged{i}"), "new_password": "whatever passphrase 77"}),
        )
        .await;
        assert_problem(r, 401, "invalid_token").await;
    }
    let r = post_from(
        &app,
        "/v1/password/reset",
        "203.0.113.20",
        json!({"token": "lk_pr_forged", "new_password": "whatever passphrase 77"}),
    )
    .await;
    assert_problem(r, 429, "rate_limited").await;

    for (path, from) in [
        ("/v1/password/forgot", "203.0.113.21"),
        ("/v1/email/verify/resend", "203.0.113.22"),
    ] {
        for i in 0..20 {
            let r = post_from(
                &app,
                path,
                from,
                json!({"email": format!("spray{i}@example.com")}),
            )
            .await;
            assert_eq!(r.status(), 202, "{path} {i}");
        }
        let r = post_from(&app, path, from, json!({"email": "spray-last@example.com"})).await;
        assert_problem(r, 429, "rate_limited").await;
        // Another client is not affected.
        let r = post_from(
            &app,
            path,
            "198.51.100.9",
            json!({"email": "x@example.com"}),
        )
        .await;
        assert_eq!(r.status(), 202);
    }
}

/// Forged tokens on authenticated endpoints (here the read group, whose own
/// rule counts per user) are limited per client IP.
#[tokio::test]
async fn unauthenticated_requests_are_limited_per_client_ip() {
    let app = TestApp::builder()
        .configure(trusting_loopback)
        .spawn()
        .await;
    let forged = |path: &'static str| {
        let app = &app;
        async move {
            app.client
                .get(app.url(path))
                .header("x-forwarded-for", "203.0.113.30")
                .bearer_auth("eyJhbGciOiJFZERTQSJ9.e30.forged")
                .send()
                .await
                .unwrap()
        }
    };
    for i in 0..60 {
        let path = if i % 2 == 0 {
            "/v1/me"
        } else {
            "/v1/me/sessions"
        };
        assert_problem(forged(path).await, 401, "unauthorized").await;
    }
    assert_problem(forged("/v1/me").await, 429, "rate_limited").await;
    // A signed-in user from the same address is not counted against it.
    app.create_user("ok@example.com", PASSWORD, true).await;
    let r = app
        .client
        .post(app.url("/v1/login"))
        .header("x-forwarded-for", "198.51.100.30")
        .json(&json!({"email": "ok@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .client
        .get(app.url("/v1/me"))
        .header("x-forwarded-for", "203.0.113.30")
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

/// Behind a proxy that appends X-Forwarded-For (the default header), a
/// client's own `Forwarded` or `X-Real-IP` cannot pick its address: every
/// attempt still counts against the one address the proxy saw.
#[tokio::test]
async fn a_client_cannot_choose_its_ip_with_another_forwarding_header() {
    let app = TestApp::builder()
        .configure(trusting_loopback)
        .spawn()
        .await;
    let attempt = |i: u32| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/v1/login"))
                .header("x-forwarded-for", "203.0.113.40")
                .header("forwarded", format!("for=198.51.100.{i}"))
                .header("x-real-ip", format!("192.0.2.{i}"))
                .json(&json!({"email": format!("s{i}@example.com"), "password": "wrong password here"}))
                .send()
                .await
                .unwrap()
        }
    };
    for i in 0..10 {
        assert_eq!(attempt(i).await.status(), 401);
    }
    assert_problem(attempt(10).await, 429, "rate_limited").await;
}

/// IPv6 clients count by their /64 (rate_limit.ipv6_prefix), and an
/// IPv4-mapped address is the IPv4 client: neither a fresh address from one's
/// own /64 nor the mapped spelling gets a new budget.
#[tokio::test]
async fn ipv6_clients_count_by_their_64_and_mapped_addresses_as_ipv4() {
    let app = TestApp::builder()
        .configure(trusting_loopback)
        .spawn()
        .await;
    for i in 0..10 {
        let r = login_as(
            &app,
            &format!("v6{i}@example.com"),
            &format!("2001:db8:7:7::{:x}", i + 1),
        )
        .await;
        assert_eq!(r.status(), 401);
    }
    let r = login_as(&app, "v6x@example.com", "2001:db8:7:7:ffff::1").await;
    assert_problem(r, 429, "rate_limited").await;
    assert_eq!(
        login_as(&app, "v6y@example.com", "2001:db8:7:8::1")
            .await
            .status(),
        401,
        "another /64 is another client"
    );
    for i in 0..10 {
        let from = if i % 2 == 0 {
            "203.0.113.41".to_owned()
        } else {
            "::ffff:203.0.113.41".to_owned()
        };
        assert_eq!(
            login_as(&app, &format!("m{i}@example.com"), &from)
                .await
                .status(),
            401
        );
    }
    let r = login_as(&app, "m10@example.com", "::ffff:203.0.113.41").await;
    assert_problem(r, 429, "rate_limited").await;
}
