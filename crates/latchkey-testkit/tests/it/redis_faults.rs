//! Redis faults. With the shared limiter down, the limits on guessing
//! credentials hold (each node counts them itself) while the other groups
//! follow `rate_limit.fail_open`. After an outage under load the nodes heal by
//! themselves within seconds of Redis being back — readiness, shared limits
//! and the cache bus — having logged their trouble a bounded number of times.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey_server::config::{Config, LimitKey, RateLimitRule, RouteGroup};
use latchkey_testkit::app::TestApp;
use latchkey_testkit::redis_server::RedisServer;
use serde_json::{json, Value};

use crate::support::{assert_problem, post_from};

const PASSWORD: &str = "correct horse battery staple";
/// The quota of the Redis-backed rule probed after the outage.
const PROBE_LIMIT: u32 = 4;
/// Pause of each load client between two requests.
const LOAD_PACE: Duration = Duration::from_millis(2);

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
            let r = post_from(&app, "/v1/login", "203.0.113.1", guess(i)).await;
            assert_eq!(r.status(), 401, "fail_open={fail_open}: guess {i}");
            assert!(r.headers().get("ratelimit").is_some());
        }
        let r = post_from(&app, "/v1/login", "203.0.113.1", guess(3)).await;
        assert!(r.headers().get("retry-after").is_some());
        assert_problem(r, 429, "rate_limited").await;
        // Keyed per client as always: another address has its own budget.
        let r = post_from(&app, "/v1/login", "203.0.113.2", guess(4)).await;
        assert_eq!(r.status(), 401);
        // The MFA step is in the login group: forged second steps are limited too.
        let forged = json!({"mfa_token": "forged", "method": "totp", "code": "123456"});
        for i in 0..3 {
            let r = post_from(&app, "/v1/login/mfa", "203.0.113.3", forged.clone()).await;
            assert_ne!(r.status(), 429, "fail_open={fail_open}: MFA guess {i}");
            assert!(r.status().is_client_error(), "{}", r.status());
        }
        let r = post_from(&app, "/v1/login/mfa", "203.0.113.3", forged.clone()).await;
        assert_problem(r, 429, "rate_limited").await;
        // The password group: forgot is limited per address.
        let forgot = json!({"email": "victim@example.com"});
        for _ in 0..2 {
            let r = post_from(&app, "/v1/password/forgot", "203.0.113.4", forgot.clone()).await;
            assert_eq!(r.status(), 202);
        }
        let r = post_from(&app, "/v1/password/forgot", "203.0.113.5", forgot).await;
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

/// Load on `GET /v1/me` from a few clients, alternating between two nodes,
/// until stopped; counts answers and anything but a `200`. Each client pauses
/// [`LOAD_PACE`] between requests: hundreds of requests a second, without
/// starving the tests running beside it.
struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    not_ok: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    async fn start(nodes: [&TestApp; 2], clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let not_ok = Arc::new(AtomicUsize::new(0));
        let urls = nodes.map(|n| n.url("/v1/me"));
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let token = access_token(nodes[0]).await;
            let (stop, answered, not_ok, urls) = (
                Arc::clone(&stop),
                Arc::clone(&answered),
                Arc::clone(&not_ok),
                urls.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let r = client.get(&urls[i % 2]).bearer_auth(&token).send().await;
                    answered.fetch_add(1, Ordering::Relaxed);
                    if !r.is_ok_and(|r| r.status() == 200) {
                        not_ok.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(LOAD_PACE).await;
                }
            }));
        }
        Self {
            stop,
            answered,
            not_ok,
            tasks,
        }
    }

    fn answered(&self) -> usize {
        self.answered.load(Ordering::Relaxed)
    }

    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.unwrap();
        }
        self.not_ok.load(Ordering::Relaxed)
    }
}

async fn access_token(node: &TestApp) -> String {
    let r = node.login("ada@example.com", PASSWORD).await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Polls `check` until it holds or `deadline` passes; the time it took.
async fn within<F: std::future::Future<Output = bool>>(
    deadline: Instant,
    mut check: impl FnMut(u32) -> F,
) -> Option<Duration> {
    let started = Instant::now();
    let mut attempt = 0;
    while Instant::now() < deadline {
        if check(attempt).await {
            return Some(started.elapsed());
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

async fn ready(node: &TestApp) -> bool {
    node.get("/readyz").await.status() == 200
}

/// A fresh client address's requests to the default group alternate between
/// the nodes; a refusal within `limit + 2` requests can only come from the
/// shared (Redis) budget: each node alone would admit them all, and with the
/// shared limiter down this group is served unlimited.
async fn shared_limit_refuses(nodes: [&TestApp; 2], round: u32, limit: u32) -> bool {
    let from = format!("198.51.{}.{}", 100 + round / 250, round % 250 + 1);
    for i in 0..limit + 2 {
        let node = nodes[(i % 2) as usize];
        let r = node
            .client
            .get(node.url("/.well-known/jwks.json"))
            .header("x-forwarded-for", &from)
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            return true;
        }
    }
    false
}

/// A session logged out on `a` is refused by `b` at once (`b` had just checked
/// and cached it, for 5 s): only the cache bus can tell `b` that soon.
async fn logout_reaches_the_other_node(a: &TestApp, b: &TestApp, round: u32) -> bool {
    let token = access_token(a).await;
    if b.get_as("/v1/me", &token).await.status() != 200 {
        return false;
    }
    let r = a
        .client
        .post(a.url("/v1/logout"))
        .header("x-forwarded-for", format!("192.0.2.{}", round % 250 + 1))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let logged_out = Instant::now();
    while logged_out.elapsed() < Duration::from_millis(500) {
        if b.get_as("/v1/me", &token).await.status() == 401 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Captured WARN lines about Redis (the connection, the limiter, the cache
/// bus) logged after byte `from`.
fn redis_warnings(from: usize) -> Vec<String> {
    let text = latchkey_testkit::logs::captured().text();
    text.get(from..)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"level\":\"WARN\""))
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("redis") || l.contains("cache bus")
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[cfg_attr(
    latchkey_postgres_unset,
    ignore = "needs LATCHKEY_TEST_POSTGRES_URL (unset when built)"
)]
async fn a_redis_outage_under_load_heals_within_seconds_of_redis_being_back() {
    // Two nodes must share one database: PostgreSQL.
    let Some(builder) = TestApp::builder().on_postgres().await else {
        return;
    };
    let mut redis = RedisServer::start();
    let shared = {
        let (url, prefix) = (redis.url(), format!("test-{}:", uuid::Uuid::now_v7()));
        move |c: &mut Config| {
            // One deployment: the same issuer and audience on both nodes.
            c.public_url = Some("http://auth.latchkey.test".into());
            c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
            c.redis.url = Some(url.clone());
            c.redis.key_prefix.clone_from(&prefix);
            c.rate_limit.rules = vec![
                rule("read-user", RouteGroup::Read, LimitKey::User, 1_000_000),
                rule("login-ip", RouteGroup::Login, LimitKey::Ip, 10_000),
                rule("probe-ip", RouteGroup::Default, LimitKey::Ip, PROBE_LIMIT),
            ];
        }
    };
    let a = builder.configure(shared.clone()).spawn().await;
    let b = TestApp::builder()
        .configure(shared)
        .beside(&a)
        .spawn()
        .await;
    let nodes = [&a, &b];
    a.create_user("ada@example.com", PASSWORD, true).await;
    for node in nodes {
        assert!(ready(node).await);
    }
    let load = Load::start(nodes, 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let log_from = latchkey_testkit::logs::captured().text().len();
    let answered_before = load.answered();
    redis.stop();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let r = a.get("/readyz").await;
    let body = assert_problem(r, 503, "unavailable").await;
    assert!(body["detail"].as_str().unwrap().contains("redis"), "{body}");
    tokio::time::sleep(Duration::from_secs(8)).await;
    let answered_during = load.answered() - answered_before;

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(5);
    let (readiness, limits, bus) = tokio::join!(
        within(deadline, move |_| async move {
            ready(nodes[0]).await && ready(nodes[1]).await
        }),
        within(deadline, move |round| shared_limit_refuses(
            nodes,
            round,
            PROBE_LIMIT
        )),
        within(deadline, move |round| logout_reaches_the_other_node(
            nodes[0], nodes[1], round
        )),
    );
    let not_ok = load.finish().await;
    let warnings = redis_warnings(log_from);
    eprintln!(
        "outage: {answered_during} requests answered; healed: readyz {readiness:?}, limits {limits:?}, cache bus {bus:?}; {} WARN lines",
        warnings.len()
    );
    assert!(
        readiness.is_some(),
        "/readyz is 200 again on both nodes within 5 s"
    );
    assert!(
        limits.is_some(),
        "a Redis-backed rule refuses again within 5 s"
    );
    assert!(bus.is_some(), "the cache bus delivers again within 5 s");
    assert_eq!(not_ok, 0, "GET /v1/me answered 200 throughout");
    assert!(
        answered_during >= 30,
        "the load ran during the outage: {answered_during}"
    );
    // One line per request would be thousands; per dependency and node it
    // is a few per 10 s.
    assert!(
        warnings.len() <= 40,
        "{} WARN lines:\n{}",
        warnings.len(),
        warnings.join("\n")
    );
}
