//! Account recovery holds: once the owner resets or changes the password, or
//! signs out everywhere, nothing an attacker started before can take the
//! account back — no pending email change, no older reset link.

use latchkey_testkit::app::{link_token, TestApp, TestAppBuilder};
use serde_json::{json, Value};

use crate::support::assert_problem;

const EMAIL: &str = "owner@example.com";
const ATTACKER_EMAIL: &str = "attacker@evil.example";
const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a brand new passphrase 2026";

fn builder() -> TestAppBuilder {
    TestApp::builder().configure(|c| c.rate_limit.enabled = false)
}

async fn signed_in(app: &TestApp, password: &str) -> Value {
    let r = app.login(EMAIL, password).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn post_as(app: &TestApp, path: &str, access: &Value, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(access["access_token"].as_str().unwrap())
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn post(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The attacker, signed in with the stolen password, asks for their own
/// address; returns the confirmation token mailed to it.
async fn attacker_starts_email_change(app: &TestApp) -> String {
    attacker_session_with_email_change(app).await.1
}

/// [`attacker_starts_email_change`], also returning the attacker's sign-in
/// (its `session_id` among others).
async fn attacker_session_with_email_change(app: &TestApp) -> (Value, String) {
    let attacker = signed_in(app, PASSWORD).await;
    let r = post_as(
        app,
        "/v1/me/email",
        &attacker,
        &json!({"new_email": ATTACKER_EMAIL, "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let token = link_token(&app.wait_for_mails(ATTACKER_EMAIL, 1).await[0]);
    (attacker, token)
}

/// The owner asks for a reset link; returns its token (the `n`-th mail with a
/// `lk_pr_` link to the owner).
async fn reset_link(app: &TestApp, n: usize) -> String {
    assert_eq!(
        post(app, "/v1/password/forgot", &json!({ "email": EMAIL }))
            .await
            .status(),
        202
    );
    for _ in 0..200 {
        let links: Vec<String> = app
            .mails()
            .iter()
            .filter(|m| m.contains(&format!("To: {EMAIL}")) && m.contains("token=lk_pr_"))
            .map(|m| link_token(m))
            .collect();
        if links.len() >= n {
            return links[n - 1].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no reset link {n} within 10 s");
}

/// The attacker follows their link; the account must keep the owner's address.
async fn attacker_confirm_is_refused(app: &TestApp, token: &str) {
    let r = post(app, "/v1/email/verify", &json!({ "token": token })).await;
    assert_problem(r, 401, "invalid_token").await;
    let owner = signed_in(app, &current_password(app).await).await;
    assert_eq!(owner["user"]["email"], EMAIL);
    assert_problem(
        app.login(ATTACKER_EMAIL, &current_password(app).await)
            .await,
        401,
        "invalid_credentials",
    )
    .await;
}

/// Whichever of the two passwords signs the owner in now.
async fn current_password(app: &TestApp) -> String {
    if app.login(EMAIL, NEW_PASSWORD).await.status() == 200 {
        NEW_PASSWORD.to_owned()
    } else {
        PASSWORD.to_owned()
    }
}

#[tokio::test]
async fn a_pending_email_change_does_not_survive_a_password_reset() {
    let app = builder().spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let token = attacker_starts_email_change(&app).await;
    let reset = reset_link(&app, 1).await;
    let r = post(
        &app,
        "/v1/password/reset",
        &json!({"token": reset, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), 204);
    attacker_confirm_is_refused(&app, &token).await;
}

#[tokio::test]
async fn a_pending_email_change_does_not_survive_a_password_change() {
    let app = builder().spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let token = attacker_starts_email_change(&app).await;
    let owner = signed_in(&app, PASSWORD).await;
    let r = post_as(
        &app,
        "/v1/me/password",
        &owner,
        &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), 204);
    attacker_confirm_is_refused(&app, &token).await;
}

#[tokio::test]
async fn a_pending_email_change_does_not_survive_a_logout_everywhere() {
    let app = builder().spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let token = attacker_starts_email_change(&app).await;
    let owner = signed_in(&app, PASSWORD).await;
    let r = post_as(&app, "/v1/logout", &owner, &json!({"all_sessions": true})).await;
    assert_eq!(r.status(), 204);
    attacker_confirm_is_refused(&app, &token).await;

    // Ending the other sessions from the session list counts too.
    let token = attacker_starts_email_change(&app).await;
    let owner = signed_in(&app, PASSWORD).await;
    let r = app
        .client
        .delete(app.url("/v1/me/sessions"))
        .bearer_auth(owner["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    attacker_confirm_is_refused(&app, &token).await;
}

/// The owner ends just the attacker's session from the session list (or a
/// refresh-token reuse ends it): the email change it asked for dies with it.
#[tokio::test]
async fn a_pending_email_change_dies_with_the_session_that_asked() {
    let app = builder().spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let (attacker, token) = attacker_session_with_email_change(&app).await;
    let owner = signed_in(&app, PASSWORD).await;
    let session = attacker["session_id"].as_str().unwrap();
    let r = app
        .client
        .delete(app.url(&format!("/v1/me/sessions/{session}")))
        .bearer_auth(owner["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    attacker_confirm_is_refused(&app, &token).await;
}

#[tokio::test]
async fn an_old_reset_link_does_not_survive_a_password_change() {
    let app = builder().spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    // The attacker, reading the owner's mailbox, keeps a reset link...
    let stale = reset_link(&app, 1).await;
    // ...the owner changes the password with the old one.
    let owner = signed_in(&app, PASSWORD).await;
    let r = post_as(
        &app,
        "/v1/me/password",
        &owner,
        &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), 204);
    let r = post(
        &app,
        "/v1/password/reset",
        &json!({"token": stale, "new_password": "the attacker's own passphrase 9"}),
    )
    .await;
    assert_problem(r, 401, "invalid_token").await;
    assert_eq!(app.login(EMAIL, NEW_PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn an_old_reset_link_does_not_survive_an_email_change() {
    let app = builder().spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    // A reset link went to the old address (a mailbox the owner is leaving).
    let stale = reset_link(&app, 1).await;
    let owner = signed_in(&app, PASSWORD).await;
    let new_address = "owner@new.example";
    let r = post_as(
        &app,
        "/v1/me/email",
        &owner,
        &json!({"new_email": new_address, "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let confirm = link_token(&app.wait_for_mails(new_address, 1).await[0]);
    let r = post(&app, "/v1/email/verify", &json!({ "token": confirm })).await;
    assert_eq!(r.status(), 200);
    let r = post(
        &app,
        "/v1/password/reset",
        &json!({"token": stale, "new_password": "the attacker's own passphrase 9"}),
    )
    .await;
    assert_problem(r, 401, "invalid_token").await;
    assert_eq!(app.login(new_address, PASSWORD).await.status(), 200);
}
