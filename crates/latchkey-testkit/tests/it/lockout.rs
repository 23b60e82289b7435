//! Login lockout through the API with a moved clock: lock after 5 failures,
//! identical for known and unknown emails, doubling, cap, reset on success,
//! unlock, events and the owner's notice.

use std::sync::Arc;

use latchkey_core::clock::ManualClock;
use latchkey_testkit::app::TestApp;
use serde_json::{json, Value};
use time::macros::datetime;
use time::Duration;

use crate::support::{assert_problem, Db};

const EMAIL: &str = "locked@example.com";
const PASSWORD: &str = "correct horse battery staple";

async fn app(
    clock: &ManualClock,
    edit: impl FnOnce(&mut latchkey_server::config::Config),
) -> TestApp {
    let app = TestApp::builder()
        .clock(Arc::new(clock.clone()))
        .configure(|c| {
            // The per-address rate limit would answer 429 first; lockout is the subject.
            c.rate_limit.enabled = false;
            edit(c);
        })
        .spawn()
        .await;
    app.create_user(EMAIL, PASSWORD, true).await;
    app
}

async fn login(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn fail_times(app: &TestApp, email: &str, n: usize) {
    for i in 0..n {
        let r = login(app, email, "wrong password, again").await;
        assert_eq!(r.status(), 401, "failure {i}");
    }
}

async fn locked_for(app: &TestApp, email: &str, password: &str) -> Value {
    let r = login(app, email, password).await;
    let retry = r.headers()["retry-after"].to_str().unwrap().to_owned();
    let mut body = assert_problem(r, 423, "account_locked").await;
    assert_eq!(body["retry_after"].to_string(), retry);
    body["request_id"] = Value::Null;
    body
}

#[tokio::test]
async fn five_failures_lock_known_and_unknown_emails_identically() {
    let clock = ManualClock::new(datetime!(2026-11-23 10:00:00 UTC));
    let app = app(&clock, |_| {}).await;
    fail_times(&app, EMAIL, 5).await;
    fail_times(&app, "nobody@example.com", 5).await;
    // Even the right password is refused while locked, before any check.
    let known = locked_for(&app, EMAIL, PASSWORD).await;
    let unknown = locked_for(&app, "nobody@example.com", PASSWORD).await;
    assert_eq!(known, unknown, "no enumeration");
    assert_eq!(known["retry_after"], 900);
    // Case and spaces are the same identifier.
    locked_for(&app, " LOCKED@example.com", PASSWORD).await;

    clock.advance(Duration::minutes(15));
    assert_eq!(
        login(&app, EMAIL, PASSWORD).await.status(),
        200,
        "lock over"
    );
    // Success reset the count: four failures do not lock.
    fail_times(&app, EMAIL, 4).await;
    assert_eq!(login(&app, EMAIL, PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn each_new_lock_doubles_up_to_the_cap_and_unlock_lifts_it() {
    let clock = ManualClock::new(datetime!(2026-11-23 10:00:00 UTC));
    let app = app(&clock, |c| {
        c.lockout.base_seconds = 3600;
        c.lockout.max_seconds = 3 * 3600;
    })
    .await;
    for expected in [3600, 7200, 10_800, 10_800] {
        fail_times(&app, EMAIL, 5).await;
        let body = locked_for(&app, EMAIL, "wrong password, again").await;
        assert_eq!(body["retry_after"], expected);
        clock.advance(Duration::seconds(expected));
    }
    fail_times(&app, EMAIL, 5).await;
    locked_for(&app, EMAIL, PASSWORD).await;
    let admin = &app.state.services.admin;
    let client = latchkey_core::auth::ClientContext::default();
    let op = latchkey_core::auth::Caller::Operator;
    assert!(admin.unlock_address(op, EMAIL, &client).await.unwrap());
    assert!(
        !admin.unlock_address(op, EMAIL, &client).await.unwrap(),
        "nothing left to clear"
    );
    assert_eq!(login(&app, EMAIL, PASSWORD).await.status(), 200, "unlocked");
}

#[tokio::test]
async fn a_lock_is_recorded_and_mailed_to_the_owner() {
    let clock = ManualClock::new(datetime!(2026-11-23 10:00:00 UTC));
    let app = app(&clock, |_| {}).await;
    fail_times(&app, EMAIL, 5).await;
    locked_for(&app, EMAIL, PASSWORD).await;
    let mails = app.wait_for_mails(EMAIL, 1).await;
    assert!(mails[0].contains("paused"), "{}", mails[0]);
    let user = app.state.store.user_by_email(EMAIL).await.unwrap().unwrap();
    let kinds: Vec<String> = app
        .state
        .store
        .user_events(user.id, 50)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind.as_str().to_owned())
        .collect();
    for kind in ["account_locked", "login_throttled", "login_failed"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for series in [
        "latchkey_lockouts_total",
        "latchkey_login_attempts_total{result=\"failure\"}",
        "latchkey_login_attempts_total{result=\"locked\"}",
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
}

#[tokio::test]
async fn lockout_can_be_turned_off() {
    let clock = ManualClock::new(datetime!(2026-11-23 10:00:00 UTC));
    let app = app(&clock, |c| c.lockout.threshold = 0).await;
    fail_times(&app, EMAIL, 8).await;
    assert_eq!(login(&app, EMAIL, PASSWORD).await.status(), 200);
}

async fn login_with_device(
    app: &TestApp,
    password: &str,
    device: Option<&str>,
) -> reqwest::Response {
    let mut r = app
        .client
        .post(app.url("/v1/login"))
        .json(&json!({"email": EMAIL, "password": password}));
    if let Some(device) = device {
        r = r.header("cookie", format!("__Host-lk_device={device}"));
    }
    r.send().await.unwrap()
}

fn device_cookie(r: &reqwest::Response) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("__Host-lk_device="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_device_that_signed_in_before_gets_in_while_an_attacker_is_locked_out() {
    let clock = ManualClock::new(datetime!(2026-11-23 10:00:00 UTC));
    let app = app(&clock, |_| {}).await;
    let r = login_with_device(&app, PASSWORD, None).await;
    assert_eq!(r.status(), 200);
    let device = device_cookie(&r);

    // An attacker (no device cookie) locks the address.
    fail_times(&app, EMAIL, 5).await;
    locked_for(&app, EMAIL, PASSWORD).await;
    // The owner's browser still gets in.
    let r = login_with_device(&app, PASSWORD, Some(&device)).await;
    assert_eq!(r.status(), 200, "device cookie bypasses the address lock");
    let device = device_cookie(&r);
    // Forged, truncated or someone else's device tokens count for nothing.
    for forged in [
        "AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &device[..device.len() - 2],
        "garbage",
    ] {
        let r = login_with_device(&app, PASSWORD, Some(forged)).await;
        assert_problem(r, 423, "account_locked").await;
    }
    // The device has its own count: five failures with it lock it too.
    for _ in 0..5 {
        let r = login_with_device(&app, "wrong password, again", Some(&device)).await;
        assert_eq!(r.status(), 401);
    }
    let r = login_with_device(&app, PASSWORD, Some(&device)).await;
    assert_problem(r, 423, "account_locked").await;
}

/// Fifty wrong guesses at once: each attempt is counted before its hash, so
/// no more than the threshold are ever checked (answered 401); the rest are
/// refused unchecked (429 while the first ones are being checked, 423 once
/// they locked the address) — for a known address and an unknown one alike.
#[tokio::test]
async fn concurrent_guesses_cannot_outrun_the_lockout() {
    let clock = ManualClock::new(datetime!(2026-12-03 10:00:00 UTC));
    let app = app(&clock, |_| {}).await;
    for email in [EMAIL, "nobody@example.com"] {
        let guesses = (0..50).map(|_| login(&app, email, "wrong password, again"));
        let answers = futures::future::join_all(guesses).await;
        let checked = answers.iter().filter(|r| r.status() == 401).count();
        let refused = answers
            .iter()
            .filter(|r| [423, 429].contains(&r.status().as_u16()))
            .count();
        assert!(checked <= 5, "{checked} guesses were checked for {email}");
        assert_eq!(checked + refused, 50, "only 401, 423 and 429 answers");
        locked_for(&app, email, PASSWORD).await;
    }
}

/// Many clients signing in to one shared account at once (a team login, a
/// load test): those beyond the threshold while the first are being checked
/// are asked to retry, and none of it counts — the account never locks and
/// its counter is back to zero afterwards.
#[tokio::test]
async fn a_crowd_of_correct_sign_ins_never_locks_the_account() {
    let clock = ManualClock::new(datetime!(2026-12-03 10:00:00 UTC));
    let app = app(&clock, |_| {}).await;
    for round in 0..3 {
        let crowd = (0..16).map(|_| login(&app, EMAIL, PASSWORD));
        let answers = futures::future::join_all(crowd).await;
        let mut signed_in = 0;
        for r in answers {
            match r.status().as_u16() {
                200 => signed_in += 1,
                429 => {
                    assert_eq!(r.headers()["retry-after"], "1");
                    assert_problem(r, 429, "rate_limited").await;
                }
                other => panic!("round {round}: a correct sign-in answered {other}"),
            }
        }
        assert!(signed_in >= 1, "round {round}: nobody got in");
    }
    // Nothing of the crowd was left on the counter: four failures do not lock.
    fail_times(&app, EMAIL, 4).await;
    assert_eq!(login(&app, EMAIL, PASSWORD).await.status(), 200);
    let mut db = Db::of(&app).await;
    let locks = db
        .count("SELECT COUNT(*) FROM security_events WHERE kind = 'account_locked'")
        .await;
    assert_eq!(locks, 0, "no lock was ever recorded");
}

/// Counts reserved by a node that died mid-check stay on the row. While they
/// are recent they may be attempts in flight (refused, retry); once the last
/// attempt is over a minute old they are read as failures and the address
/// locks, rather than refusing it for ever — and an attacker's refused
/// attempts do not keep them looking recent.
#[tokio::test]
async fn counts_left_by_a_crash_lock_instead_of_refusing_for_ever() {
    let clock = ManualClock::new(datetime!(2026-12-03 10:00:00 UTC));
    let app = app(&clock, |_| {}).await;
    fail_times(&app, EMAIL, 1).await;
    // Five attempts were reserved when the node died.
    let mut db = Db::of(&app).await;
    db.execute("UPDATE login_throttles SET failures = 5").await;
    for _ in 0..3 {
        clock.advance(Duration::seconds(20));
        let r = login(&app, EMAIL, "wrong password, again").await;
        assert_problem(r, 429, "rate_limited").await;
    }
    assert_eq!(
        db.count("SELECT CAST(MAX(failures) AS BIGINT) FROM login_throttles")
            .await,
        5,
        "refusals are given back"
    );
    // Over a minute after the last checked attempt, refusals notwithstanding:
    // locked.
    clock.advance(Duration::seconds(30));
    locked_for(&app, EMAIL, PASSWORD).await;
}

/// A stolen session cannot guess the password through the endpoints that
/// re-check it: their failures count on the sign-in lockout, and a locked
/// address is locked there too.
#[tokio::test]
async fn password_re_checks_count_toward_the_lockout() {
    let clock = ManualClock::new(datetime!(2026-12-03 10:00:00 UTC));
    let app = app(&clock, |_| {}).await;
    let body: Value = login(&app, EMAIL, PASSWORD).await.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let attempts = [
        (
            reqwest::Method::POST,
            "/v1/me/password",
            json!({"current_password": "guess one two three", "new_password": "an entirely new passphrase 9"}),
        ),
        (
            reqwest::Method::POST,
            "/v1/me/email",
            json!({"new_email": "thief@evil.example", "password": "guess one two three"}),
        ),
        (
            reqwest::Method::DELETE,
            "/v1/me/mfa/totp",
            json!({"password": "guess one two three"}),
        ),
        (
            reqwest::Method::POST,
            "/v1/me/mfa/recovery-codes",
            json!({"password": "guess one two three"}),
        ),
        (
            reqwest::Method::POST,
            "/v1/me/password",
            json!({"current_password": "guess one two four", "new_password": "an entirely new passphrase 9"}),
        ),
    ];
    for (method, path, body) in &attempts {
        let r = app
            .client
            .request(method.clone(), app.url(path))
            .bearer_auth(&access)
            .json(body)
            .send()
            .await
            .unwrap();
        assert_problem(r, 401, "invalid_credentials").await;
    }
    // Locked: sign-in, and the re-checks themselves.
    locked_for(&app, EMAIL, PASSWORD).await;
    let r = app
        .client
        .post(app.url("/v1/me/password"))
        .bearer_auth(&access)
        .json(
            &json!({"current_password": PASSWORD, "new_password": "an entirely new passphrase 9"}),
        )
        .send()
        .await
        .unwrap();
    assert_problem(r, 423, "account_locked").await;
    // A correct re-check gives its count back (and clears nothing).
    clock.advance(Duration::minutes(16));
    let r = app
        .client
        .post(app.url("/v1/me/email"))
        .bearer_auth(&access)
        .json(&json!({"new_email": "ada@new.example", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(login(&app, EMAIL, PASSWORD).await.status(), 200);
}

/// A client that hangs up while its password is being checked leaves
/// nothing on the counter: the abandoned attempt is given back, so a flaky
/// network (or an attacker who never waits for answers) cannot lock anyone.
#[tokio::test]
async fn an_abandoned_attempt_gives_its_count_back() {
    let clock = ManualClock::new(datetime!(2026-12-03 10:00:00 UTC));
    let app = app(&clock, |c| {
        // A hash slow enough to hang up during.
        c.password.argon2_memory_kib = 64 * 1024;
        c.password.argon2_iterations = 40;
    })
    .await;
    let impatient = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    let gone = impatient
        .post(app.url("/v1/login"))
        .json(&json!({"email": EMAIL, "password": "wrong password, again"}))
        .send()
        .await;
    assert!(
        gone.is_err_and(|e| e.is_timeout()),
        "the check outlasted the client"
    );
    let mut db = Db::of(&app).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let counted = db
            .count("SELECT CAST(COALESCE(MAX(failures), 0) AS BIGINT) FROM login_throttles")
            .await;
        if counted == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the abandoned attempt is still counted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
