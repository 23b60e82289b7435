//! Access tokens through the real server: tokens signed with the server's own
//! key but for another audience or issuer are refused; ES256 and RS256 work end
//! to end; `remember_me` sessions outlive the short absolute lifetime, and the
//! session list reports device metadata.

use std::sync::Arc;

use latchkey_core::clock::ManualClock;
use latchkey_testkit::app::TestApp;
use serde_json::{json, Value};
use time::macros::datetime;

use crate::support::{assert_problem, jwt_parts};

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery staple";
const FIREFOX_LINUX: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";

async fn me(app: &TestApp, token: &str) -> reqwest::Response {
    app.get_as("/v1/me", token).await
}

async fn login(app: &TestApp, remember_me: bool) -> Value {
    let r = app
        .client
        .post(app.url("/v1/login"))
        .header("user-agent", FIREFOX_LINUX)
        .json(&json!({"email": EMAIL, "password": PASSWORD, "remember_me": remember_me}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn our_own_key_signing_for_another_audience_or_issuer_is_refused() {
    let app = TestApp::spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let session = login(&app, false).await;
    let (_, claims) = jwt_parts(session["access_token"].as_str().unwrap());
    let sign = |change: &dyn Fn(&mut latchkey_core::token::TokenSettings)| {
        let mut settings = app.state.services.sessions.tokens().clone();
        change(&mut settings);
        let now = app.state.clock.now();
        let c = latchkey_core::token::new_claims(
            &settings,
            now,
            claims["sub"].as_str().unwrap().parse().unwrap(),
            claims["sid"].as_str().unwrap().parse().unwrap(),
            now,
            vec!["pwd".into()],
            Vec::new(),
        );
        app.state.services.sessions.keys().ring().sign(&c).unwrap()
    };
    // Control: the same path with the server's own settings is accepted.
    let genuine = sign(&|_| {});
    assert_eq!(me(&app, &genuine).await.status(), 200);
    for (name, token) in [
        ("audience", sign(&|s| s.audience = "another-api".into())),
        (
            "issuer",
            sign(&|s| s.issuer = "https://evil.example".into()),
        ),
    ] {
        let r = me(&app, &token).await;
        assert_eq!(r.status(), 401, "wrong {name}");
        assert_problem(r, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn es256_and_rs256_sign_and_verify_end_to_end() {
    for (alg, kty) in [("ES256", "EC"), ("RS256", "RSA")] {
        let app = TestApp::builder()
            .configure(|c| c.tokens.algorithm = alg.into())
            .spawn()
            .await;
        app.create_user(EMAIL, PASSWORD, true).await;
        let session = login(&app, false).await;
        let access = session["access_token"].as_str().unwrap();
        let (header, _) = jwt_parts(access);
        assert_eq!(header["alg"], alg);
        assert_eq!(me(&app, access).await.status(), 200, "{alg}");
        let jwks: Value = app
            .get("/.well-known/jwks.json")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(jwks["keys"][0]["kty"], kty);
        assert_eq!(jwks["keys"][0]["kid"], header["kid"]);
        // A flipped signature byte is refused under either algorithm.
        let mut forged = access.to_owned();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        assert_problem(me(&app, &forged).await, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn remember_me_keeps_a_session_past_the_short_lifetime_and_sessions_report_the_device() {
    let clock = ManualClock::new(datetime!(2026-11-28 10:00:00 UTC));
    let app = TestApp::builder()
        .clock(Arc::new(clock.clone()))
        .spawn()
        .await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let short = login(&app, false).await;
    let long = login(&app, true).await;
    // Day 6: both are used, which pushes their idle expiry a week ahead, but
    // never past their absolute expiry (7 days without remember_me, 30 with).
    clock.advance(time::Duration::days(6));
    let short = refresh(&app, &short).await;
    let long = refresh(&app, &long).await;
    assert_eq!(short.status(), 200);
    assert_eq!(long.status(), 200);
    let (short, long): (Value, Value) = (short.json().await.unwrap(), long.json().await.unwrap());
    assert_eq!(
        short["refresh_expires_in"],
        24 * 3600,
        "capped by the absolute expiry"
    );
    assert_eq!(long["refresh_expires_in"], 7 * 24 * 3600);
    // Day 8: the short session is over, the remembered one lives on.
    clock.advance(time::Duration::days(2));
    assert_problem(refresh(&app, &short).await, 401, "invalid_token").await;
    let long = refresh(&app, &long).await;
    assert_eq!(long.status(), 200);
    let long: Value = long.json().await.unwrap();

    let r = app
        .get_as("/v1/me/sessions", long["access_token"].as_str().unwrap())
        .await;
    assert_eq!(r.status(), 200);
    let list: Value = r.json().await.unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    let item = &items[0];
    assert_eq!(item["id"], long["session_id"]);
    assert_eq!(item["current"], true);
    assert_eq!(item["device"]["browser"], "Firefox", "{item}");
    assert_eq!(item["device"]["os"], "Linux", "{item}");
    assert_eq!(item["user_agent"], FIREFOX_LINUX);
    assert_eq!(item["ip"], "127.0.0.1");
    assert_eq!(
        item["expires_at"], "2026-12-13T10:00:00Z",
        "day 8 + a week of idle time"
    );
}

async fn refresh(app: &TestApp, session: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/token/refresh"))
        .header("user-agent", FIREFOX_LINUX)
        .json(&json!({"refresh_token": session["refresh_token"]}))
        .send()
        .await
        .unwrap()
}
