//! The password policy through the API: the policy document, each rule with its
//! code and message at sign-up and password change, NFKC, and the history rule.

use latchkey_testkit::app::TestApp;
use serde_json::{json, Value};

use crate::support::assert_problem;

const GOOD: &str = "correct horse battery staple";

async fn signup(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/signup"))
        .json(&json!({"email": email, "password": password, "name": "Ada Lovelace"}))
        .send()
        .await
        .unwrap()
}

fn codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["field"], "password");
            assert!(e["message"].as_str().is_some_and(|m| m.len() > 5), "{e}");
            e["code"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn the_policy_document_shows_the_active_rules() {
    let app = TestApp::spawn().await;
    let body: Value = app.get("/v1/password/policy").await.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "min_length": 12, "max_length": 128, "min_strength": 3,
            "require_lowercase": false, "require_uppercase": false,
            "require_digit": false, "require_symbol": false,
            "history": 5, "breach_check": false, "normalization": "NFKC"
        })
    );
    let app = TestApp::builder()
        .configure(|c| {
            c.password.min_length = 16;
            c.password.require_digit = true;
            c.password.history = 0;
        })
        .spawn()
        .await;
    let body: Value = app.get("/v1/password/policy").await.json().await.unwrap();
    assert_eq!(body["min_length"], 16);
    assert_eq!(body["require_digit"], true);
    assert_eq!(body["history"], 0);
}

#[tokio::test]
async fn weak_short_and_personal_passwords_are_refused_with_a_code_each() {
    // Many sign-ups from one address: not what this test is about.
    let app = TestApp::builder()
        .configure(|c| c.rate_limit.enabled = false)
        .spawn()
        .await;
    for (password, expected) in [
        ("short", vec!["too_short", "weak"]),
        ("password123456", vec!["weak"]),
        ("qwertyuiopasdfgh", vec!["weak"]),
        ("adalovelace2026", vec!["weak"]),
        ("latchkeylatchkey1", vec!["weak"]),
    ] {
        let body = assert_problem(
            signup(&app, "ada@example.com", password).await,
            400,
            "validation_failed",
        )
        .await;
        assert_eq!(codes(&body), expected, "{password}");
        // (A 5-letter word may occur in advice text; long inputs must not.)
        if password.len() >= 12 {
            assert!(!body.to_string().contains(password), "never echoed");
        }
    }
    let too_long = "Zq9!".repeat(40);
    let body = assert_problem(
        signup(&app, "ada@example.com", &too_long).await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(codes(&body), ["too_long"]);
    assert_eq!(signup(&app, "ada@example.com", GOOD).await.status(), 202);
}

#[tokio::test]
async fn composition_rules_apply_when_configured() {
    let app = TestApp::builder()
        .configure(|c| {
            c.password.require_uppercase = true;
            c.password.require_digit = true;
            c.password.require_symbol = true;
        })
        .spawn()
        .await;
    let body = assert_problem(
        signup(&app, "bob@example.com", GOOD).await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(
        codes(&body),
        ["missing_uppercase", "missing_digit", "missing_symbol"]
    );
    assert_eq!(
        signup(&app, "bob@example.com", "Correct horse battery staple 9!")
            .await
            .status(),
        202
    );
}

async fn change(app: &TestApp, token: &str, current: &str, new: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/me/password"))
        .bearer_auth(token)
        .json(&json!({"current_password": current, "new_password": new}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn recent_passwords_cannot_be_reused() {
    let app = TestApp::builder()
        .configure(|c| {
            c.password.history = 3;
            c.rate_limit.enabled = false;
        })
        .spawn()
        .await;
    app.create_user("carol@example.com", GOOD, true).await;
    let body: Value = app
        .login("carol@example.com", GOOD)
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap();
    let reused = |r: reqwest::Response| async move {
        let body = assert_problem(r, 400, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "new_password");
        assert_eq!(body["errors"][0]["code"], "reused");
    };
    // The current password is one of the last three.
    reused(change(&app, token, GOOD, GOOD).await).await;
    let second = "tangerine orbit calculus forty";
    let third = "velvet quarry lantern mosaic";
    assert_eq!(change(&app, token, GOOD, second).await.status(), 204);
    assert_eq!(change(&app, token, second, third).await.status(), 204);
    reused(change(&app, token, third, GOOD).await).await;
    reused(change(&app, token, third, second).await).await;
    // Three changes later the first password has left the history.
    let fourth = "harbor pixel meadow saffron";
    assert_eq!(change(&app, token, third, fourth).await.status(), 204);
    assert_eq!(change(&app, token, fourth, GOOD).await.status(), 204);
}

#[tokio::test]
async fn passwords_are_nfkc_normalized_before_hashing() {
    let app = TestApp::spawn().await;
    // U+FB03 (the "ffi" ligature) and full-width letters normalize to ASCII.
    let typed = "o\u{FB03}ce ｃａｔａｐｕｌｔ yellow river";
    let normalized = "office catapult yellow river";
    app.create_user("dan@example.com", "placeholder password x", true)
        .await;
    let body: Value = app
        .login("dan@example.com", "placeholder password x")
        .await
        .json()
        .await
        .unwrap();
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        change(&app, token, "placeholder password x", typed)
            .await
            .status(),
        204
    );
    assert_eq!(app.login("dan@example.com", normalized).await.status(), 200);
    assert_eq!(app.login("dan@example.com", typed).await.status(), 200);
}
