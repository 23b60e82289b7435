//! Webhooks on a real server, delivering to a real receiver on 127.0.0.1:
//! signed exactly as Standard Webhooks say, retried until the receiver takes
//! the event, kept as a dead letter after the last attempt and sent again on
//! request; SSRF targets refused; static endpoints owned by the
//! configuration; two nodes dispatching each event once.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use latchkey_core::clock::ManualClock;
use latchkey_core::webhooks::signing::WebhookSecret;
use latchkey_testkit::app::TestApp;
use reqwest::Method;
use serde_json::{json, Value};
use time::macros::datetime;

use crate::admin::{call, get_json, grant, token};
use crate::support::assert_problem;

const PASSWORD: &str = "correct horse battery staple";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A webhook receiver on 127.0.0.1: answers the statuses of `plan` in turn,
/// then `then`; records every request.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Received>>>,
    plan: Arc<Mutex<Vec<u16>>>,
    then: Arc<Mutex<u16>>,
}

impl Receiver {
    async fn start(plan: &[u16], then: u16) -> Self {
        let receiver = Self {
            addr: "127.0.0.1:0".parse().unwrap(),
            got: Arc::default(),
            plan: Arc::new(Mutex::new(plan.iter().rev().copied().collect())),
            then: Arc::new(Mutex::new(then)),
        };
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let state = state.clone();
                async move {
                    state.got.lock().unwrap().push(Received {
                        headers,
                        body: body.to_vec(),
                    });
                    let status = state
                        .plan
                        .lock()
                        .unwrap()
                        .pop()
                        .unwrap_or(*state.then.lock().unwrap());
                    // A long error body: only 1 KiB of it may be kept.
                    (StatusCode::from_u16(status).unwrap(), "x".repeat(5000))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind(receiver.addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, ..receiver }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    fn answer(&self, status: u16) {
        *self.then.lock().unwrap() = status;
    }
}

/// Verifies a request as a receiver's Standard Webhooks library would:
/// one of the signatures is `secret`'s over `id.timestamp.body`.
fn signed_by(r: &Received, secret: &str) -> bool {
    let secret = WebhookSecret::parse(secret).unwrap();
    let header = |name: &str| r.headers[name].to_str().unwrap().to_owned();
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let expected = secret.sign(&id, timestamp.parse().unwrap(), &r.body);
    header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

async fn admin_app(builder: latchkey_testkit::app::TestAppBuilder) -> (TestApp, String) {
    let app = builder
        .configure(|c| {
            c.rate_limit.enabled = false;
            c.webhooks.max_attempts = 4;
        })
        .spawn()
        .await;
    let root = app.create_user("root@example.com", PASSWORD, true).await;
    grant(&app, root, "admin").await;
    app.create_user("ada@example.com", PASSWORD, true).await;
    let admin = token(&app, "root@example.com").await;
    (app, admin)
}

async fn create(app: &TestApp, admin: &str, url: &str, events: Value) -> reqwest::Response {
    call(
        app,
        Method::POST,
        "/v1/admin/webhooks",
        admin,
        Some(json!({"url": url, "events": events, "description": "test receiver"})),
    )
    .await
}

/// Runs delivery rounds until `receiver` has `count` requests (no retry
/// needed: the clock does not move).
async fn wait_for_requests(app: &TestApp, receiver: &Receiver, count: usize) {
    for _ in 0..50 {
        app.settled().await;
        app.events_pass().await;
        if receiver.got().len() >= count {
            return;
        }
    }
    panic!(
        "the receiver got {} of {count} requests",
        receiver.got().len()
    );
}

/// Runs delivery rounds, moving the clock past every retry delay, until
/// `receiver` has `count` requests.
async fn deliver_until(app: &TestApp, clock: &ManualClock, receiver: &Receiver, count: usize) {
    for _ in 0..50 {
        app.settled().await;
        app.events_pass().await;
        if receiver.got().len() >= count {
            return;
        }
        clock.advance(time::Duration::hours(13));
    }
    panic!(
        "the receiver got {} of {count} requests",
        receiver.got().len()
    );
}

#[tokio::test]
async fn a_receiver_failing_three_times_gets_the_event_once_more_with_a_valid_signature() {
    let clock = ManualClock::new(datetime!(2026-12-04 10:00:00 UTC));
    let receiver = Receiver::start(&[500, 503, 500], 200).await;
    let (app, admin) = admin_app(TestApp::builder().clock(Arc::new(clock.clone()))).await;
    let r = create(&app, &admin, &receiver.url(), json!(["login_succeeded"])).await;
    assert_eq!(r.status(), 201);
    let hook: Value = r.json().await.unwrap();
    let secret = hook["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    // The list never shows the secret again.
    let list = get_json(&app, "/v1/admin/webhooks", &admin).await;
    assert_eq!(list["items"][0]["id"], hook["id"]);
    assert!(!list.to_string().contains(&secret[6..]));

    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
    deliver_until(&app, &clock, &receiver, 4).await;
    // Further rounds deliver nothing more: it was taken.
    for _ in 0..3 {
        clock.advance(time::Duration::hours(13));
        app.events_pass().await;
    }
    let got = receiver.got();
    assert_eq!(got.len(), 4, "three failures, one success, nothing after");
    let ids: Vec<_> = got
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one webhook-id across retries"
    );
    for r in &got {
        assert!(signed_by(r, &secret), "every attempt is signed");
        assert_eq!(r.headers["content-type"], "application/json");
    }
    let body: Value = serde_json::from_slice(&got[3].body).unwrap();
    assert_eq!(body["type"], "login_succeeded");
    assert_eq!(body["id"].as_str(), Some(ids[0].to_str().unwrap()));
    assert_eq!(body["data"]["type"], "login_succeeded");
    assert_eq!(body["data"]["category"], "authentication");
    assert!(body["occurred_at"].is_string());
    // Only the subscribed type: root's own sign-in came before the webhook,
    // and no other type was sent.
    assert!(got.iter().all(|r| {
        serde_json::from_slice::<Value>(&r.body).unwrap()["type"] == "login_succeeded"
    }));
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one story: attempts, the dead letter, its page, retry, cleanup
async fn a_delivery_failing_every_attempt_is_a_dead_letter_that_retry_delivers() {
    let clock = ManualClock::new(datetime!(2026-12-04 10:00:00 UTC));
    let receiver = Receiver::start(&[], 500).await;
    let (app, admin) = admin_app(TestApp::builder().clock(Arc::new(clock.clone()))).await;
    let r = create(&app, &admin, &receiver.url(), json!(["*"])).await;
    assert_eq!(r.status(), 201);
    let hook: Value = r.json().await.unwrap();
    assert_eq!(
        app.login("ada@example.com", "wrong password")
            .await
            .status(),
        401
    );
    // max_attempts = 4 (see admin_app); the webhook_created event of the
    // admin goes too: two deliveries, each tried four times.
    deliver_until(&app, &clock, &receiver, 8).await;
    app.events_pass().await;
    // The clock moved past the admin's token: a fresh one.
    let admin = token(&app, "root@example.com").await;
    let page = get_json(&app, "/v1/admin/events/dead-letters", &admin).await;
    let letters = page["items"].as_array().unwrap().clone();
    assert_eq!(letters.len(), 2, "{page}");
    let failed = letters
        .iter()
        .find(|l| l["type"] == "login_failed")
        .expect("the sign-in's dead letter")
        .clone();
    assert_eq!(failed["attempts"], 4);
    assert_eq!(failed["webhook_id"], hook["id"]);
    let error = failed["last_error"].as_str().unwrap();
    assert!(error.starts_with("HTTP 500"), "{error}");
    assert!(error.len() <= 1024, "the receiver's body was kept whole");
    // Four attempts of each, nothing after the last (root's sign-in just
    // now is another event).
    let attempts_of = |event_id: &Value| {
        receiver
            .got()
            .iter()
            .filter(|r| r.headers["webhook-id"].to_str().unwrap() == event_id.as_str().unwrap())
            .count()
    };
    for letter in &letters {
        assert_eq!(attempts_of(&letter["event_id"]), 4, "{letter}");
    }

    // Paging: one per page, then the next with the cursor.
    let first = get_json(&app, "/v1/admin/events/dead-letters?limit=1", &admin).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = get_json(
        &app,
        &format!("/v1/admin/events/dead-letters?limit=1&cursor={cursor}"),
        &admin,
    )
    .await;
    assert_ne!(first["items"][0]["id"], second["items"][0]["id"]);
    assert!(second["next_cursor"].is_null());
    let r = call(
        &app,
        Method::GET,
        "/v1/admin/events/dead-letters?cursor=forged",
        &admin,
        None,
    )
    .await;
    assert_problem(r, 400, "malformed_request").await;

    // The receiver works again; a retry is a new series of attempts.
    receiver.answer(200);
    let path = format!(
        "/v1/admin/events/dead-letters/{}/retry",
        failed["id"].as_str().unwrap()
    );
    assert_eq!(
        call(&app, Method::POST, &path, &admin, None).await.status(),
        202
    );
    app.events_pass().await;
    assert_eq!(attempts_of(&failed["event_id"]), 5, "sent again, once");
    let page = get_json(&app, "/v1/admin/events/dead-letters", &admin).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    // A week on, the delivered rows are cleaned up; the dead letter stays.
    clock.advance(time::Duration::days(8));
    let cleaned = app
        .state
        .store
        .delete_expired(
            latchkey_core::ports::Expired::WebhookDeliveries,
            app.state.clock.now(),
            100,
        )
        .await
        .unwrap();
    assert!(cleaned >= 1, "{cleaned}");
    let admin = token(&app, "root@example.com").await;
    let page = get_json(&app, "/v1/admin/events/dead-letters", &admin).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    // Retried already (and delivered): no longer a dead letter.
    assert_problem(
        call(&app, Method::POST, &path, &admin, None).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        call(
            &app,
            Method::POST,
            "/v1/admin/events/dead-letters/nope/retry",
            &admin,
            None,
        )
        .await,
        404,
        "not_found",
    )
    .await;
    // The retry is on the record.
    let audit = get_json(&app, "/v1/admin/audit?type=dead_letter_retried", &admin).await;
    assert_eq!(audit["items"][0]["details"]["dead_letter_id"], failed["id"]);
}

#[tokio::test]
async fn ssrf_targets_and_bad_subscriptions_are_refused_when_private_networks_are_not_allowed() {
    let (app, admin) = admin_app(TestApp::builder().configure(|c| {
        c.webhooks.allow_private_networks = Some(false);
    }))
    .await;
    for url in [
        "https://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://localhost/hook",
    ] {
        let body = assert_problem(
            create(&app, &admin, url, json!(["*"])).await,
            400,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "url", "{url}");
        assert_eq!(body["errors"][0]["code"], "private_address", "{url}");
    }
    let body = assert_problem(
        create(&app, &admin, "http://hooks.example.com/", json!(["*"])).await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["code"], "not_https");
    for events in [json!([]), json!(["no_such_type"])] {
        let body = assert_problem(
            create(&app, &admin, "https://hooks.example.com/", events).await,
            400,
            "validation_failed",
        )
        .await;
        assert_eq!(body["errors"][0]["field"], "events");
    }
    // Oversized and hostile fields are refused, each naming its field.
    let long_url = format!("https://hooks.example.com/{}", "a".repeat(2100));
    for (url, description, field) in [
        (long_url.as_str(), None, "url"),
        ("https://user:pw@hooks.example.com/", None, "url"),
        (
            "https://hooks.example.com/",
            Some("x".repeat(300)),
            "description",
        ),
        (
            "https://hooks.example.com/",
            Some("a\u{0}b".to_owned()),
            "description",
        ),
    ] {
        let r = call(
            &app,
            Method::POST,
            "/v1/admin/webhooks",
            &admin,
            Some(json!({"url": url, "events": ["*"], "description": description})),
        )
        .await;
        let body = assert_problem(r, 400, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], field, "{url}");
        assert!(
            !body.to_string().contains("user:pw"),
            "the URL's credentials echoed"
        );
    }
    let r = call(
        &app,
        Method::POST,
        "/v1/admin/webhooks",
        &admin,
        Some(json!({"url": "https://hooks.example.com/", "events": ["*"], "secret": "mine"})),
    )
    .await;
    assert_problem(r, 400, "malformed_request").await;
    let r = create(
        &app,
        &admin,
        "https://hooks.example.com/x",
        json!(["alert", "login_failed"]),
    )
    .await;
    assert_eq!(r.status(), 201);
    let list = get_json(&app, "/v1/admin/webhooks", &admin).await;
    assert_eq!(list["items"][0]["events"], json!(["alert", "login_failed"]));
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_new_one_and_deletion_stops_deliveries() {
    let clock = ManualClock::new(datetime!(2026-12-04 10:00:00 UTC));
    let receiver = Receiver::start(&[], 200).await;
    let (app, admin) = admin_app(TestApp::builder().clock(Arc::new(clock.clone()))).await;
    let hook: Value = create(&app, &admin, &receiver.url(), json!(["login_succeeded"]))
        .await
        .json()
        .await
        .unwrap();
    let id = hook["id"].as_str().unwrap();
    let old = hook["secret"].as_str().unwrap().to_owned();
    let r = call(
        &app,
        Method::POST,
        &format!("/v1/admin/webhooks/{id}/rotate-secret"),
        &admin,
        None,
    )
    .await;
    assert_eq!(r.status(), 201);
    let new = r.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(old, new);
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
    deliver_until(&app, &clock, &receiver, 1).await;
    let got = receiver.got();
    assert!(
        signed_by(&got[0], &new) && signed_by(&got[0], &old),
        "both during the overlap"
    );
    assert_eq!(
        got[0].headers["webhook-signature"]
            .to_str()
            .unwrap()
            .split(' ')
            .count(),
        2
    );

    // After the overlap (a day by default), only the new secret signs.
    clock.advance(time::Duration::hours(25));
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
    deliver_until(&app, &clock, &receiver, 2).await;
    let got = receiver.got();
    assert!(signed_by(&got[1], &new) && !signed_by(&got[1], &old));

    // The clock moved past the admin's token: a fresh one (a sign-in the
    // webhook receives too).
    let admin = token(&app, "root@example.com").await;
    app.settled().await;
    app.events_pass().await;
    let before = receiver.got().len();
    let path = format!("/v1/admin/webhooks/{id}");
    assert_eq!(
        call(&app, Method::DELETE, &path, &admin, None)
            .await
            .status(),
        204
    );
    assert_problem(
        call(&app, Method::DELETE, &path, &admin, None).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
    app.settled().await;
    app.events_pass().await;
    assert_eq!(
        receiver.got().len(),
        before,
        "a deleted webhook receives nothing"
    );
    let audit = get_json(&app, "/v1/admin/audit?category=admin", &admin).await;
    let kinds: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for kind in [
        "webhook_created",
        "webhook_secret_rotated",
        "webhook_deleted",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
}

#[tokio::test]
async fn a_static_endpoint_is_delivered_to_and_owned_by_the_configuration() {
    let receiver = Receiver::start(&[], 200).await;
    let secret = WebhookSecret::generate().reveal().to_string();
    let (url, configured) = (receiver.url(), secret.clone());
    let (app, admin) = admin_app(TestApp::builder().configure(move |c| {
        c.webhooks
            .endpoints
            .push(latchkey_server::config::StaticWebhook {
                name: "billing".into(),
                url,
                events: vec!["alert".into(), "login_failed".into()],
                secret: Some(latchkey_server::config::Secret::new(configured)),
                secret_file: None,
                previous_secret: None,
            });
    }))
    .await;
    let list = get_json(&app, "/v1/admin/webhooks", &admin).await;
    let item = &list["items"][0];
    assert_eq!(item["static"], true);
    let id = item["id"].as_str().unwrap();
    assert_problem(
        call(
            &app,
            Method::DELETE,
            &format!("/v1/admin/webhooks/{id}"),
            &admin,
            None,
        )
        .await,
        409,
        "conflict",
    )
    .await;
    assert_problem(
        call(
            &app,
            Method::POST,
            &format!("/v1/admin/webhooks/{id}/rotate-secret"),
            &admin,
            None,
        )
        .await,
        409,
        "conflict",
    )
    .await;
    assert_eq!(
        app.login("ada@example.com", "wrong password")
            .await
            .status(),
        401
    );
    wait_for_requests(&app, &receiver, 2).await;
    app.events_pass().await;
    // The alert of root's admin grant (after the start, when the endpoint
    // was synced) and ada's failed sign-in; nothing else.
    // (Up to 4 attempts are in flight to one endpoint: in any order.)
    let got = receiver.got();
    let mut kinds: Vec<String> = got
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["admin_role_granted", "login_failed"]);
    assert!(got.iter().all(|r| signed_by(r, &secret)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_dispatch_and_deliver_each_event_once() {
    let receiver = Receiver::start(&[], 200).await;
    let (a, admin) = admin_app(TestApp::builder()).await;
    let b = TestApp::builder()
        .configure(|c| c.rate_limit.enabled = false)
        .beside(&a)
        .spawn()
        .await;
    assert_eq!(
        create(&a, &admin, &receiver.url(), json!(["login_succeeded"]))
            .await
            .status(),
        201
    );
    for round in 0..10 {
        let node = if round % 2 == 0 { &a } else { &b };
        assert_eq!(node.login("ada@example.com", PASSWORD).await.status(), 200);
    }
    for _ in 0..50 {
        a.settled().await;
        b.settled().await;
        a.events_pass().await;
        b.events_pass().await;
        if receiver.got().len() >= 10 {
            break;
        }
    }
    a.events_pass().await;
    b.events_pass().await;
    let mut ids: Vec<String> = receiver
        .got()
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 10, "each sign-in delivered");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10, "none twice");
}

#[tokio::test]
async fn every_event_is_added_to_the_redis_stream_once_in_commit_order() {
    let Ok(url) = std::env::var("LATCHKEY_TEST_REDIS_URL") else {
        eprintln!("skipped: LATCHKEY_TEST_REDIS_URL not set");
        return;
    };
    let prefix = format!("test-{}:", uuid::Uuid::now_v7());
    let (redis_url, key_prefix) = (url.clone(), prefix.clone());
    let (app, _admin) = admin_app(TestApp::builder().configure(move |c| {
        c.redis.url = Some(redis_url);
        c.redis.key_prefix = key_prefix;
        c.events.redis_stream = Some("events".into());
        c.events.redis_stream_maxlen = 1000;
    }))
    .await;
    // The stream starts at the chain head when the server started with it
    // configured; the events after it all go.
    app.events_pass().await;
    for password in [PASSWORD, "wrong password", PASSWORD] {
        let _ = app.login("ada@example.com", password).await;
        // A failed sign-in is recorded after its answer: settled, so the
        // commit order is the order of the requests.
        app.settled().await;
    }
    app.events_pass().await;
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(format!("{prefix}events"))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let field = |fields: &[(String, String)], name: &str| {
        fields
            .iter()
            .find(|(f, _)| f == name)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    let kinds: Vec<String> = entries.iter().map(|(_, f)| field(f, "type")).collect();
    assert_eq!(
        kinds[kinds.len() - 3..],
        ["login_succeeded", "login_failed", "login_succeeded"],
        "{kinds:?}"
    );
    let mut ids: Vec<String> = entries.iter().map(|(_, f)| field(f, "id")).collect();
    let data: Value = serde_json::from_str(&field(&entries[entries.len() - 1].1, "data")).unwrap();
    assert_eq!(data["id"].as_str(), ids.last().map(String::as_str));
    assert_eq!(data["data"]["type"], "login_succeeded");
    ids.dedup();
    assert_eq!(ids.len(), entries.len(), "no event twice");
    // Compared with the table: the last events, every one, in place order.
    let stored = app.state.store.chained_events(0, 1000).await.unwrap();
    let tail: Vec<String> = stored[stored.len() - ids.len()..]
        .iter()
        .map(|s| s.event.id.to_string())
        .collect();
    assert_eq!(ids, tail);
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}events"))
        .query_async(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn alerts_are_logged_once_at_their_level_and_go_to_alert_subscriptions_only() {
    let logs = crate::support::captured_logs();
    let receiver = Receiver::start(&[], 200).await;
    let (app, admin) = admin_app(TestApp::builder().configure(|c| {
        c.events.alert_min_severity = "warning".into();
    }))
    .await;
    let r = create(&app, &admin, &receiver.url(), json!(["alert"])).await;
    assert_eq!(r.status(), 201);
    let hook: Value = r.json().await.unwrap();
    // webhook_created is a warning (an alert at this threshold); a wrong
    // password is a notice (not one).
    assert_eq!(
        app.login("ada@example.com", "wrong password")
            .await
            .status(),
        401
    );
    wait_for_requests(&app, &receiver, 1).await;
    app.events_pass().await;
    let kinds: Vec<String> = receiver
        .got()
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, ["webhook_created"]);
    let text = logs.text();
    let webhook_id = hook["id"].as_str().unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("security alert") && l.contains("webhook_created"))
        .filter(|l| {
            // This server's alert: the one whose event names this webhook.
            let event = receiver.got()[0].headers["webhook-id"]
                .to_str()
                .unwrap()
                .to_owned();
            l.contains(&event)
        })
        .collect();
    assert_eq!(lines.len(), 1, "logged once: {lines:?}");
    let line: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["fields"]["severity"], "warning");
    assert!(!lines[0].contains("root@example.com") && !lines[0].contains(webhook_id));
}

#[tokio::test]
async fn reencrypt_moves_webhook_secrets_to_the_new_master_key_and_they_keep_signing() {
    use crate::mfa::{secrets, MASTER_A, MASTER_B};
    use latchkey_server::config::Secret;
    let receiver = Receiver::start(&[], 200).await;
    let (mut first, admin) = admin_app(
        TestApp::builder().configure(|c| c.secrets.master_key = Some(Secret::new(MASTER_A))),
    )
    .await;
    let hook: Value = create(&first, &admin, &receiver.url(), json!(["login_failed"]))
        .await
        .json()
        .await
        .unwrap();
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let report =
        latchkey_server::reencrypt::run(&*first.state.store, &secrets(MASTER_B, &[MASTER_A]))
            .await
            .unwrap();
    assert_eq!(report.webhook_secrets, 1);
    let again =
        latchkey_server::reencrypt::run(&*first.state.store, &secrets(MASTER_B, &[MASTER_A]))
            .await
            .unwrap();
    assert_eq!(again.webhook_secrets, 0, "a second run has nothing to do");
    // A node with B alone opens the secret and signs with it (the node
    // with A alone stops first: it could not).
    first.begin_shutdown().unwrap().await.unwrap();
    let second = TestApp::builder()
        .configure(|c| {
            c.rate_limit.enabled = false;
            c.secrets.master_key = Some(Secret::new(MASTER_B));
        })
        .beside(&first)
        .spawn()
        .await;
    assert_eq!(
        second
            .login("ada@example.com", "wrong password")
            .await
            .status(),
        401
    );
    wait_for_requests(&second, &receiver, 1).await;
    let got = receiver.got();
    assert_eq!(got.len(), 1);
    assert!(signed_by(&got[0], &secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_stream_loses_nothing_while_redis_is_down_and_logs_its_trouble_a_bounded_number_of_times(
) {
    if std::env::var("LATCHKEY_TEST_REDIS_URL").is_err() {
        eprintln!("skipped: LATCHKEY_TEST_REDIS_URL not set");
        return;
    }
    let logs = crate::support::captured_logs();
    let mut redis = latchkey_testkit::redis_server::RedisServer::start();
    let url = redis.url();
    let (app, _admin) = admin_app(TestApp::builder().configure(move |c| {
        c.redis.url = Some(url);
        c.events.redis_stream = Some("events".into());
    }))
    .await;
    app.events_pass().await;
    redis.stop();
    // Sign-ins go on while Redis is down; their events wait in the table.
    for _ in 0..3 {
        assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
        app.settled().await;
        app.events_pass().await;
    }
    let missed: Vec<String> = app
        .state
        .store
        .chained_events(0, 1000)
        .await
        .unwrap()
        .iter()
        .rev()
        .take(3)
        .map(|s| s.event.id.to_string())
        .collect();
    // Redis is back, empty (it keeps nothing across a restart): the events it
    // did not take are added now, in order.
    redis.restart();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut entries: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for _ in 0..100 {
        app.events_pass().await;
        if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
            entries = redis::cmd("XRANGE")
                .arg(format!("{}events", app.state.config.redis.key_prefix))
                .arg("-")
                .arg("+")
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            if entries.len() >= 3 {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let ids: Vec<String> = entries
        .iter()
        .map(|(_, f)| f.iter().find(|(k, _)| k == "id").unwrap().1.clone())
        .collect();
    let mut expected = missed;
    expected.reverse();
    assert!(
        ids.ends_with(&expected),
        "{ids:?} should end with {expected:?}"
    );
    let lines = logs
        .text()
        .lines()
        .filter(|l| l.contains("event stream: Redis did not take an event"))
        .count();
    assert!(lines <= 2, "{lines} trouble lines for one outage");
}
