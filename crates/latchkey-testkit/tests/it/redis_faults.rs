//! Redis faults. With the shared limiter down, the limits on guessing
//! credentials hold (each node counts them itself) while the other groups
//! follow `rate_limit.fail_open`.

use latchkey_server::config::{LimitKey, RateLimitRule, RouteGroup};
use latchkey_testkit::app::TestApp;
use serde_json::{json, Value};

use crate::support::assert_problem;


fn rule(name: &str, route: RouteGroup, key: LimitKey, limit: u32) -> RateLimitRule {
    RateLimitRule {
        name: name.into(),
        route,
        key,
        limit,
        window_seconds: 60,
    }
}

/// A Redis URL where nothing listens.
fn dead_redis_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("redis://127.0.0.1:{port}")
}

async fn post(app: &TestApp, path: &str, from: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("x-forwarded-for", from)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn with_the_shared_limiter_down_guessing_credentials_is_still_limited() {
    for fail_open in [true, false] {
        let app = TestApp::builder()
            .configure(move |c| {
                c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
                c.redis.url = Some(dead_redis_url());
                c.rate_limit.fail_open = fail_open;
                c.rate_limit.rules = vec![
                    rule("login-ip", RouteGroup::Login, LimitKey::Ip, 3),
                    rule(
                        "password-identifier",
                        RouteGroup::Password,
                        LimitKey::Identifier,
                        2,
                    ),
                    rule("default-ip", RouteGroup::Default, LimitKey::Ip, 2),
                ];
            })
            .spawn()
            .await;
        let guess =
            |i: usize| json!({"email": format!("victim{i}@example.com"), "password": "guess"});
        // Password guesses: the rule holds, counted on this node.
        for i in 0..3 {
            let r = post(&app, "/v1/login", "203.0.113.1", guess(i)).await;
            assert_eq!(r.status(), 401, "fail_open={fail_open}: guess {i}");
            assert!(r.headers().get("ratelimit").is_some());
        }
        let r = post(&app, "/v1/login", "203.0.113.1", guess(3)).await;
        assert!(r.headers().get("retry-after").is_some());
        assert_problem(r, 429, "rate_limited").await;
        // Keyed per client as always: another address has its own budget.
        let r = post(&app, "/v1/login", "203.0.113.2", guess(4)).await;
        assert_eq!(r.status(), 401);
        // The MFA step is in the login group: forged second steps are limited too.
        let forged = json!({"mfa_token": "forged", "method": "totp", "code": "123456"});
        for i in 0..3 {
            let r = post(&app, "/v1/login/mfa", "203.0.113.3", forged.clone()).await;
            assert_ne!(r.status(), 429, "fail_open={fail_open}: MFA guess {i}");
            assert!(r.status().is_client_error(), "{}", r.status());
        }
        let r = post(&app, "/v1/login/mfa", "203.0.113.3", forged.clone()).await;
        assert_problem(r, 429, "rate_limited").await;
        // The password group: forgot is limited per address.
        let forgot = json!({"email": "victim@example.com"});
        for _ in 0..2 {
            let r = post(&app, "/v1/password/forgot", "203.0.113.4", forgot.clone()).await;
            assert_eq!(r.status(), 202);
        }
        let r = post(&app, "/v1/password/forgot", "203.0.113.5", forgot).await;
        assert_problem(r, 429, "rate_limited").await;
        // The other groups follow rate_limit.fail_open.
        for i in 0..4 {
            let r = app
                .client
                .get(app.url("/.well-known/jwks.json"))
                .header("x-forwarded-for", "203.0.113.6")
                .send()
                .await
                .unwrap();
            if fail_open {
                assert_eq!(r.status(), 200, "served unlimited ({i})");
            } else {
                let body = assert_problem(r, 503, "unavailable").await;
                assert!(body["detail"].as_str().unwrap().contains("rate limiter"));
            }
        }
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(
            metrics.contains("latchkey_rate_limiter_fallback_total{rule=\"login-ip\"}"),
            "{metrics}"
        );
        assert!(
            metrics.contains("latchkey_rate_limiter_errors_total{backend=\"redis\"}"),
            "{metrics}"
        );
    }
}
