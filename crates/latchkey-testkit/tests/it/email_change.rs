//! Email change: password required, the link mailed to the new address (over a
//! real SMTP server), the old address told twice, single use, expiry, newer
//! requests voiding older ones, taken addresses, and the confirmation race.

use std::sync::Arc;

use latchkey_core::clock::ManualClock;
use latchkey_testkit::app::{link_token, TestApp, TestAppBuilder};
use latchkey_testkit::smtp_sink::{SinkOptions, SmtpSink};
use serde_json::{json, Value};
use time::macros::datetime;

use crate::support::assert_problem;

const EMAIL: &str = "ada@example.com";
const NEW_EMAIL: &str = "Ada.Lovelace@example.org";
const PASSWORD: &str = "correct horse battery staple";

fn builder() -> TestAppBuilder {
    TestApp::builder().configure(|c| c.rate_limit.enabled = false)
}

async fn token_of(app: &TestApp, email: &str, password: &str) -> String {
    let r: Value = app.login(email, password).await.json().await.unwrap();
    r["access_token"].as_str().unwrap().to_owned()
}

async fn change(app: &TestApp, access: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/me/email"))
        .bearer_auth(access)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn get_me(app: &TestApp, access: &str) -> Value {
    app.get_as("/v1/me", access).await.json().await.unwrap()
}

async fn confirm(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/email/verify"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_new_address_verifies_over_smtp_and_the_old_one_is_told() {
    let sink = SmtpSink::start(SinkOptions::plain()).await;
    let port = sink.addr().port();
    let app = builder().smtp_plain(port).spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let access = token_of(&app, EMAIL, PASSWORD).await;

    let r = change(
        &app,
        &access,
        &json!({"new_email": format!("  {NEW_EMAIL} "), "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), 202);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "verification_sent"})
    );
    let mails = sink.wait_for(2).await;
    let to_new = mails
        .iter()
        .find(|m| m.rcpt_to == vec![NEW_EMAIL.to_owned()])
        .expect("link to the new address")
        .parsed();
    let to_old = mails
        .iter()
        .find(|m| m.rcpt_to == vec![EMAIL.to_owned()])
        .expect("notice to the old address")
        .parsed();
    assert_eq!(
        to_new.header("Subject"),
        Some("Confirm your new email address for latchkey")
    );
    assert_eq!(
        to_old.header("Subject"),
        Some("Email address change requested for your latchkey account")
    );
    assert!(to_old.body.contains(NEW_EMAIL), "{}", to_old.body);
    let html = to_new.html.clone().expect("an HTML alternative");
    assert!(html.contains("lk_ec_"), "{html}");
    let token = link_token(&to_new.to_text());
    assert!(token.starts_with("lk_ec_"), "{token}");

    // Nothing changes before the link is followed.
    let me: Value = get_me(&app, &access).await;
    assert_eq!(me["email"], EMAIL);
    assert_eq!(app.login(NEW_EMAIL, PASSWORD).await.status(), 401);

    let r = confirm(&app, &token).await;
    assert_eq!(r.status(), 200);
    let user: Value = r.json().await.unwrap();
    assert_eq!(user["email"], NEW_EMAIL);
    assert_eq!(user["email_verified"], true);
    // Single use.
    assert_problem(confirm(&app, &token).await, 401, "invalid_token").await;

    let changed = sink.wait_for(3).await[2].clone();
    assert_eq!(changed.rcpt_to, vec![EMAIL.to_owned()]);
    assert_eq!(
        changed.parsed().header("Subject"),
        Some("The email address of your latchkey account was changed")
    );
    // The session in use stays and sees the new address; sign-in follows it.
    let me: Value = get_me(&app, &access).await;
    assert_eq!(me["email"], NEW_EMAIL);
    assert_problem(app.login(EMAIL, PASSWORD).await, 401, "invalid_credentials").await;
    assert_eq!(
        app.login("ada.lovelace@EXAMPLE.org", PASSWORD)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn hostile_requests_are_refused() {
    let app = builder().spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let access = token_of(&app, EMAIL, PASSWORD).await;

    let r = app
        .client
        .post(app.url("/v1/me/email"))
        .json(&json!({"new_email": NEW_EMAIL, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "unauthorized").await;
    let wrong = json!({"new_email": NEW_EMAIL, "password": "not my password!"});
    assert_problem(
        change(&app, &access, &wrong).await,
        401,
        "invalid_credentials",
    )
    .await;
    for bad in [
        "not-an-address",
        "a@b\u{0}.com",
        &format!("{}@example.com", "a".repeat(250)),
        "",
    ] {
        let r = change(
            &app,
            &access,
            &json!({"new_email": bad, "password": PASSWORD}),
        )
        .await;
        let body = assert_problem(r, 400, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "new_email", "{body}");
    }
    let same = json!({"new_email": EMAIL, "password": PASSWORD});
    let body = assert_problem(change(&app, &access, &same).await, 400, "validation_failed").await;
    assert_eq!(body["errors"][0]["code"], "unchanged", "{body}");
    let extra = json!({"new_email": NEW_EMAIL, "password": PASSWORD, "admin": true});
    assert_problem(
        change(&app, &access, &extra).await,
        400,
        "malformed_request",
    )
    .await;
    for forged in ["lk_ec_forged", &format!("lk_ec_{}", "A".repeat(43))] {
        assert_problem(confirm(&app, forged).await, 401, "invalid_token").await;
    }
    // None of the refused requests mailed the new address.
    assert!(app
        .mails()
        .iter()
        .all(|m| !m.contains(&format!("To: {NEW_EMAIL}"))));
}

#[tokio::test]
async fn links_expire_and_a_newer_request_voids_the_older_one() {
    let clock = ManualClock::new(datetime!(2026-11-28 10:00:00 UTC));
    let app = builder().clock(Arc::new(clock.clone())).spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let access = token_of(&app, EMAIL, PASSWORD).await;
    let body = json!({"new_email": NEW_EMAIL, "password": PASSWORD});
    assert_eq!(change(&app, &access, &body).await.status(), 202);
    let older = link_token(&app.wait_for_mails(NEW_EMAIL, 1).await[0]);
    clock.advance(time::Duration::seconds(1));
    assert_eq!(change(&app, &access, &body).await.status(), 202);
    let newer = link_token(&app.wait_for_mails(NEW_EMAIL, 2).await[1]);
    assert_ne!(older, newer);
    assert_problem(confirm(&app, &older).await, 401, "invalid_token").await;
    clock.advance(time::Duration::hours(24));
    assert_problem(confirm(&app, &newer).await, 401, "invalid_token").await;
    // The account kept its address.
    assert_eq!(app.login(EMAIL, PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn a_taken_address_gets_the_same_answer_and_no_mail() {
    let app = builder().spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    app.create_user(NEW_EMAIL, PASSWORD, true).await;
    let access = token_of(&app, EMAIL, PASSWORD).await;
    let body = json!({"new_email": NEW_EMAIL.to_uppercase(), "password": PASSWORD});
    let r = change(&app, &access, &body).await;
    assert_eq!(r.status(), 202);
    // The requester's old address is told as usual; the taken one gets nothing.
    app.wait_for_mails(EMAIL, 1).await;
    app.mail_settled().await;
    assert!(app
        .mails()
        .iter()
        .all(|m| !m.contains("Subject: Confirm your new email address")));

    let open = builder()
        .configure(|c| c.auth.enumeration_protection = false)
        .configure(|c| c.auth.require_email_verification = false)
        .spawn()
        .await;
    open.create_user(EMAIL, PASSWORD, true).await;
    open.create_user(NEW_EMAIL, PASSWORD, true).await;
    let access = token_of(&open, EMAIL, PASSWORD).await;
    assert_problem(change(&open, &access, &body).await, 409, "conflict").await;
}

#[tokio::test]
async fn two_accounts_racing_for_one_address_cannot_both_get_it() {
    let app = builder().spawn().await;
    let target = "shared@example.net";
    let mut tokens = Vec::new();
    for email in ["one@example.com", "two@example.com"] {
        app.create_user(email, PASSWORD, true).await;
        let access = token_of(&app, email, PASSWORD).await;
        let body = json!({"new_email": target, "password": PASSWORD});
        assert_eq!(change(&app, &access, &body).await.status(), 202);
    }
    for mail in app.wait_for_mails(target, 2).await {
        tokens.push(link_token(&mail));
    }
    let (a, b) = tokio::join!(confirm(&app, &tokens[0]), confirm(&app, &tokens[1]));
    let mut statuses = vec![a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 409]);
    // Exactly one account signs in with the address.
    assert_eq!(app.login(target, PASSWORD).await.status(), 200);
    let old_ones = [
        app.login("one@example.com", PASSWORD)
            .await
            .status()
            .as_u16(),
        app.login("two@example.com", PASSWORD)
            .await
            .status()
            .as_u16(),
    ];
    let mut old_ones = old_ones.to_vec();
    old_ones.sort_unstable();
    assert_eq!(old_ones, vec![200, 401]);
}
