//! Password reset: the mailed link (over a real SMTP server and the file
//! transport), single use, expiry, newer requests voiding older ones, sessions
//! revoked, lockout cleared, and `forgot` answering alike for every address.

use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey_core::clock::ManualClock;
use latchkey_testkit::app::{link_token, TestApp, TestAppBuilder};
use latchkey_testkit::smtp_sink::{SinkOptions, SmtpSink};
use serde_json::{json, Value};
use time::macros::datetime;

use crate::support::assert_problem;

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a brand new passphrase 2026";

fn builder() -> TestAppBuilder {
    TestApp::builder().configure(|c| c.rate_limit.enabled = false)
}

async fn forgot(app: &TestApp, email: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/password/forgot"))
        .json(&json!({ "email": email }))
        .send()
        .await
        .unwrap()
}

async fn reset(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/password/reset"))
        .json(&json!({"token": token, "new_password": password}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_reset_link_over_smtp_sets_the_password_and_signs_everything_out() {
    let sink = SmtpSink::start(SinkOptions::plain()).await;
    let port = sink.addr().port();
    let app = builder().smtp_plain(port).spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let first: Value = app.login(EMAIL, PASSWORD).await.json().await.unwrap();
    let second: Value = app.login(EMAIL, PASSWORD).await.json().await.unwrap();

    let r = forgot(&app, "ADA@example.com").await;
    assert_eq!(r.status(), 202);
    let mail = sink.wait_for(1).await[0].clone();
    assert_eq!(mail.rcpt_to, vec![EMAIL.to_owned()]);
    let parsed = mail.parsed();
    assert_eq!(
        parsed.header("Subject"),
        Some("Reset your latchkey password")
    );
    assert!(
        parsed.body.contains(&format!(
            "{}/reset-password?token=lk_pr_",
            app.state.config.effective_public_url()
        )),
        "{}",
        parsed.body
    );
    let token = link_token(&parsed.to_text());

    // The rules apply, and a refused password leaves the token usable.
    let r = reset(&app, &token, "short").await;
    assert_problem(r, 400, "validation_failed").await;
    let r = reset(&app, &token, PASSWORD).await;
    let body = assert_problem(r, 400, "validation_failed").await;
    assert_eq!(body["errors"][0]["code"], "reused", "{body}");
    assert_eq!(reset(&app, &token, NEW_PASSWORD).await.status(), 204);
    assert_problem(
        reset(&app, &token, "yet another passphrase 77").await,
        401,
        "invalid_token",
    )
    .await;

    for session in [&first, &second] {
        let r = app
            .client
            .get(app.url("/v1/me"))
            .bearer_auth(session["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_problem(r, 401, "unauthorized").await;
        let r = app
            .client
            .post(app.url("/v1/token/refresh"))
            .json(&json!({"refresh_token": session["refresh_token"]}))
            .send()
            .await
            .unwrap();
        assert_problem(r, 401, "invalid_token").await;
    }
    assert_problem(app.login(EMAIL, PASSWORD).await, 401, "invalid_credentials").await;
    assert_eq!(app.login(EMAIL, NEW_PASSWORD).await.status(), 200);
    let confirmation = sink.wait_for(2).await[1].parsed();
    assert_eq!(
        confirmation.header("Subject"),
        Some("Your latchkey password was changed")
    );
}

#[tokio::test]
async fn tokens_expire_and_a_newer_request_voids_the_older_one() {
    let clock = ManualClock::new(datetime!(2026-11-23 10:00:00 UTC));
    let app = builder().clock(Arc::new(clock.clone())).spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    assert_eq!(forgot(&app, EMAIL).await.status(), 202);
    let older = link_token(&app.wait_for_mails(EMAIL, 1).await[0]);
    clock.advance(time::Duration::seconds(1));
    assert_eq!(forgot(&app, EMAIL).await.status(), 202);
    let newer = link_token(&app.wait_for_mails(EMAIL, 2).await[1]);
    assert_ne!(older, newer);
    assert_problem(
        reset(&app, &older, NEW_PASSWORD).await,
        401,
        "invalid_token",
    )
    .await;

    clock.advance(time::Duration::minutes(31));
    assert_problem(
        reset(&app, &newer, NEW_PASSWORD).await,
        401,
        "invalid_token",
    )
    .await;
    for forged in ["lk_pr_forged", "", &"x".repeat(500)] {
        assert_problem(
            reset(&app, forged, NEW_PASSWORD).await,
            401,
            "invalid_token",
        )
        .await;
    }
}

#[tokio::test]
async fn a_reset_clears_the_lockout_of_the_address() {
    let app = builder().spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    for _ in 0..5 {
        assert_problem(
            app.login(EMAIL, "wrong password!!").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    assert_problem(app.login(EMAIL, PASSWORD).await, 423, "account_locked").await;
    assert_eq!(forgot(&app, EMAIL).await.status(), 202);
    // The lock notice and the reset link are both queued off the request
    // path: either may be delivered first.
    let mails = app.wait_for_mails(EMAIL, 2).await;
    let link = mails
        .iter()
        .find(|m| m.contains("token="))
        .expect("the reset link");
    let token = link_token(link);
    assert_eq!(reset(&app, &token, NEW_PASSWORD).await.status(), 204);
    assert_eq!(app.login(EMAIL, NEW_PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn forgot_answers_alike_and_as_fast_for_unknown_addresses() {
    let app = builder().spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let known = forgot(&app, EMAIL).await;
    let unknown = forgot(&app, "nobody@example.com").await;
    assert_eq!(known.status(), 202);
    assert_eq!(unknown.status(), 202);
    let known = known.text().await.unwrap();
    assert_eq!(known, unknown.text().await.unwrap());
    // The same {"status"} shape as sign-up, saying no more than it knows.
    assert_eq!(known, r#"{"status":"reset_sent_if_registered"}"#);
    assert_problem(
        forgot(&app, "not an address").await,
        400,
        "validation_failed",
    )
    .await;
    app.wait_for_mails(EMAIL, 1).await;
    app.mail_settled().await;
    assert!(
        app.mails()
            .iter()
            .all(|m| !m.contains("nobody@example.com")),
        "an unknown address got mail"
    );

    // Loose statistical check: the lookup and the mail happen after the answer,
    // so the medians of both kinds stay close (bench/ would measure precisely).
    let mut times = (Vec::new(), Vec::new());
    for i in 0..15 {
        for (known, list) in [(true, &mut times.0), (false, &mut times.1)] {
            let email = if known {
                EMAIL.to_owned()
            } else {
                format!("nobody{i}@example.com")
            };
            let start = Instant::now();
            assert_eq!(forgot(&app, &email).await.status(), 202);
            list.push(start.elapsed());
        }
    }
    times.0.sort_unstable();
    times.1.sort_unstable();
    let (a, b) = (times.0[7], times.1[7]);
    let gap = a.abs_diff(b);
    assert!(gap < Duration::from_millis(50), "medians {a:?} vs {b:?}");
}
