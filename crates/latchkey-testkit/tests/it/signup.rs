//! Sign-up, email verification through the mailed link, resend, and enumeration
//! protection.

use latchkey_testkit::app::{link_token, TestApp};
use serde_json::{json, Value};

use crate::support::assert_problem;

const PASSWORD: &str = "correct horse battery staple";

async fn signup(app: &TestApp, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/signup"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn verify(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/email/verify"))
        .json(&json!({"token": token}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn signup_mails_a_link_that_verifies_once_and_unlocks_login() {
    let app = TestApp::spawn().await;
    let r = signup(
        &app,
        json!({"email": "  New.User@Example.com ", "password": PASSWORD, "name": "New"}),
    )
    .await;
    assert_eq!(r.status(), 202);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"status": "verification_sent"})
    );
    assert_problem(
        app.login("new.user@example.com", PASSWORD).await,
        403,
        "email_not_verified",
    )
    .await;

    let mails = app.wait_for_mails("New.User@Example.com", 1).await;
    assert!(mails[0].contains("Subject: Verify your email address"));
    assert!(
        mails[0].contains(&format!("{}/verify-email?token=lk_ev_", app.base_url)),
        "{}",
        mails[0]
    );
    let token = link_token(&mails[0]);

    let r = verify(&app, &token).await;
    assert_eq!(r.status(), 200);
    let user: Value = r.json().await.unwrap();
    assert_eq!(
        (
            user["email"].as_str(),
            user["email_verified"].as_bool(),
            user["name"].as_str()
        ),
        (Some("New.User@Example.com"), Some(true), Some("New"))
    );
    assert_problem(verify(&app, &token).await, 401, "invalid_token").await;
    assert_eq!(
        app.login("NEW.USER@example.com", PASSWORD).await.status(),
        200
    );
}

#[tokio::test]
async fn a_taken_address_gets_the_same_answer_and_its_owner_a_notice() {
    let app = TestApp::spawn().await;
    app.create_user("taken@example.com", PASSWORD, true).await;
    let fresh = signup(
        &app,
        json!({"email": "fresh@example.com", "password": PASSWORD}),
    )
    .await;
    let taken = signup(
        &app,
        json!({"email": "TAKEN@example.com", "password": "another long password"}),
    )
    .await;
    assert_eq!(
        (fresh.status(), taken.status()),
        (reqwest::StatusCode::ACCEPTED, reqwest::StatusCode::ACCEPTED)
    );
    assert_eq!(fresh.text().await.unwrap(), taken.text().await.unwrap());
    let notice = app.wait_for_mails("taken@example.com", 1).await;
    assert!(
        notice[0].contains("someone tried to create a new latchkey account"),
        "{}",
        notice[0]
    );
    assert!(
        !notice[0].contains("token="),
        "no link that could take over the account"
    );
    assert_eq!(
        app.login("taken@example.com", PASSWORD).await.status(),
        200,
        "the account is unchanged"
    );
    assert_problem(
        app.login("taken@example.com", "another long password")
            .await,
        401,
        "invalid_credentials",
    )
    .await;
}

#[tokio::test]
async fn without_verification_signup_signs_in_and_conflicts_only_without_protection() {
    let app = TestApp::builder()
        .configure(|c| c.auth.require_email_verification = false)
        .spawn()
        .await;
    let r = signup(
        &app,
        json!({"email": "open@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert!(body["access_token"].is_string() && body["refresh_token"].is_string());
    assert_eq!(body["user"]["email_verified"], false);
    assert_eq!(
        signup(
            &app,
            json!({"email": "OPEN@example.com", "password": PASSWORD})
        )
        .await
        .status(),
        202
    );

    let open = TestApp::builder()
        .configure(|c| {
            c.auth.require_email_verification = false;
            c.auth.enumeration_protection = false;
        })
        .spawn()
        .await;
    assert_eq!(
        signup(
            &open,
            json!({"email": "x@example.com", "password": PASSWORD})
        )
        .await
        .status(),
        201
    );
    assert_problem(
        signup(
            &open,
            json!({"email": "X@example.com", "password": PASSWORD}),
        )
        .await,
        409,
        "conflict",
    )
    .await;
}

#[tokio::test]
async fn hostile_signups_are_validation_failures() {
    // Many sign-ups from one address: not what this test is about.
    let app = TestApp::builder()
        .configure(|c| c.rate_limit.enabled = false)
        .spawn()
        .await;
    let cases = [
        (
            json!({"email": "not-an-email", "password": PASSWORD}),
            "email",
            "invalid_email",
        ),
        (
            json!({"email": "a\u{0}@example.com", "password": PASSWORD}),
            "email",
            "invalid_email",
        ),
        (
            json!({"email": format!("{}@example.com", "a".repeat(250)), "password": PASSWORD}),
            "email",
            "too_long",
        ),
        (
            json!({"email": "ok@example.com", "password": "short"}),
            "password",
            "too_short",
        ),
        (
            json!({"email": "ok@example.com", "password": "p".repeat(129)}),
            "password",
            "too_long",
        ),
        (
            json!({"email": "ok@example.com", "password": PASSWORD, "name": "n".repeat(101)}),
            "name",
            "too_long",
        ),
        (
            json!({"email": "ok@example.com", "password": PASSWORD, "name": "bad\u{7}name"}),
            "name",
            "invalid_characters",
        ),
    ];
    for (body, field, code) in cases {
        let p = assert_problem(signup(&app, body.clone()).await, 400, "validation_failed").await;
        assert!(
            p["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field && e["code"] == code),
            "{body} -> {p}"
        );
    }
    assert_problem(
        signup(
            &app,
            json!({"email": "ok@example.com", "password": PASSWORD, "role": "admin"}),
        )
        .await,
        400,
        "malformed_request",
    )
    .await;
    assert!(app
        .state
        .store
        .user_by_email("ok@example.com")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn verification_tokens_that_are_forged_or_expired_are_refused() {
    let clock =
        latchkey_core::clock::ManualClock::new(time::macros::datetime!(2026-08-01 00:00 UTC));
    let app = TestApp::builder()
        .clock(std::sync::Arc::new(clock.clone()))
        .spawn()
        .await;
    assert_eq!(
        signup(
            &app,
            json!({"email": "late@example.com", "password": PASSWORD})
        )
        .await
        .status(),
        202
    );
    let token = link_token(&app.wait_for_mails("late@example.com", 1).await[0]);
    for forged in [
        "",
        "lk_ev_",
        "garbage",
        &format!("lk_ev_{}", "A".repeat(43)),
        &token[..token.len() - 1],
    ] {
        assert_problem(verify(&app, forged).await, 401, "invalid_token").await;
    }
    clock.advance(time::Duration::hours(24) + time::Duration::seconds(1));
    assert_problem(verify(&app, &token).await, 401, "invalid_token").await;
}

#[tokio::test]
async fn resend_always_answers_202_and_mails_only_unverified_accounts() {
    let app = TestApp::spawn().await;
    app.create_user("done@example.com", PASSWORD, true).await;
    assert_eq!(
        signup(
            &app,
            json!({"email": "again@example.com", "password": PASSWORD})
        )
        .await
        .status(),
        202
    );
    app.wait_for_mails("again@example.com", 1).await;
    for email in [
        "again@example.com",
        "done@example.com",
        "nobody@example.com",
    ] {
        let r = app
            .client
            .post(app.url("/v1/email/verify/resend"))
            .json(&json!({"email": email}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{email}");
    }
    let mails = app.wait_for_mails("again@example.com", 2).await;
    let (first, second) = (link_token(&mails[0]), link_token(&mails[1]));
    assert_ne!(first, second);
    assert_eq!(verify(&app, &second).await.status(), 200);
    assert!(app
        .mails()
        .iter()
        .all(|m| !m.contains("To: done@example.com") && !m.contains("To: nobody@example.com")));
}
