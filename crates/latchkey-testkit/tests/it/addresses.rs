//! Email addresses and names: only bare addresses are accepted, spellings of
//! one mailbox are one account, nothing invisible gets in, and addresses
//! stored under the older normalization rules are brought up to date.

use latchkey_testkit::app::{TestApp, TestAppBuilder};
use serde_json::{json, Value};

use crate::support::{assert_problem, Db};

const PASSWORD: &str = "correct horse battery staple";

fn open_builder() -> TestAppBuilder {
    TestApp::builder().configure(|c| {
        c.rate_limit.enabled = false;
        c.auth.enumeration_protection = false;
        c.auth.require_email_verification = false;
    })
}

async fn post(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn signup(app: &TestApp, email: &str) -> reqwest::Response {
    post(
        app,
        "/v1/signup",
        &json!({"email": email, "password": PASSWORD}),
    )
    .await
}

#[tokio::test]
async fn five_spellings_of_one_mailbox_make_one_account() {
    let app = open_builder().spawn().await;
    assert_eq!(signup(&app, "ada@example.com").await.status(), 201);
    for spelling in [
        "ADA@EXAMPLE.COM",
        "\u{ff41}\u{ff44}\u{ff41}@example.com",
        "ada@\u{ff25}\u{ff38}\u{ff21}\u{ff2d}\u{ff30}\u{ff2c}\u{ff25}.com",
        " Ada@Example.Com ",
        "ada@example.COM",
    ] {
        assert_problem(signup(&app, spelling).await, 409, "conflict").await;
        assert_eq!(
            app.login(spelling, PASSWORD).await.status(),
            200,
            "{spelling:?} signs in to the one account"
        );
    }
    assert_eq!(signup(&app, "Straße@example.de").await.status(), 201);
    assert_problem(signup(&app, "STRASSE@example.de").await, 409, "conflict").await;
    assert_eq!(signup(&app, "ada@bücher.example").await.status(), 201);
    assert_problem(
        signup(&app, "ada@xn--bcher-kva.example").await,
        409,
        "conflict",
    )
    .await;
}

#[tokio::test]
async fn a_mailbox_with_a_display_name_is_refused_everywhere() {
    let app = open_builder().spawn().await;
    app.create_user("owner@example.com", PASSWORD, true).await;
    let login: Value = app
        .login("owner@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let access = login["access_token"].as_str().unwrap();
    for forged in [
        "Victim<attacker@evil.example>",
        "Victim <attacker@evil.example>",
        "\"Victim\" <attacker@evil.example>",
        "<attacker@evil.example>",
        "attacker@evil.example (Victim)",
        "victim@example.com,attacker@evil.example",
        "ada\u{200b}@example.com",
        "ada@exam\u{ad}ple.com",
        "\u{202e}moc.elpmaxe@ada",
    ] {
        let r = signup(&app, forged).await;
        let body = assert_problem(r, 400, "validation_failed").await;
        assert_eq!(body["errors"][0]["code"], "invalid_email", "{forged:?}");
        for path in ["/v1/password/forgot", "/v1/email/verify/resend"] {
            let r = post(&app, path, &json!({ "email": forged })).await;
            assert_problem(r, 400, "validation_failed").await;
        }
        let r = post(
            &app,
            "/v1/login",
            &json!({"email": forged, "password": PASSWORD}),
        )
        .await;
        assert_problem(r, 400, "validation_failed").await;
        let r = app
            .client
            .post(app.url("/v1/me/email"))
            .bearer_auth(access)
            .json(&json!({"new_email": forged, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_problem(r, 400, "validation_failed").await;
    }
    // Nothing was mailed to the address inside the brackets.
    app.mail_settled().await;
    assert!(app
        .mails()
        .iter()
        .all(|m| !m.contains("attacker@evil.example")));
}

#[tokio::test]
async fn names_cannot_hide_or_reorder_text() {
    let app = open_builder().spawn().await;
    for name in ["Ada\u{200b}", "\u{202e}nimdA", "a\u{2066}b", "\u{feff}Ada"] {
        let r = post(
            &app,
            "/v1/signup",
            &json!({"email": "ada@example.com", "password": PASSWORD, "name": name}),
        )
        .await;
        let body = assert_problem(r, 400, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "name");
        assert_eq!(body["errors"][0]["code"], "invalid_characters");
    }
    let r = post(
        &app,
        "/v1/signup",
        &json!({"email": "ada@example.com", "password": PASSWORD, "name": "Ada Lovelace"}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let access = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .client
        .patch(app.url("/v1/me"))
        .bearer_auth(&access)
        .json(&json!({"name": "Admin\u{202e}"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "validation_failed").await;
}

#[tokio::test]
async fn addresses_stored_under_the_old_rules_are_normalized_again() {
    let app = open_builder().spawn().await;
    app.create_user("ada@bücher.example", PASSWORD, true).await;
    app.create_user("strasse@example.de", PASSWORD, true).await;
    app.create_user("placeholder@example.de", PASSWORD, true)
        .await;
    let mut db = Db::of(&app).await;
    // As the previous release stored them: trimmed and lower-cased (which told
    // `Straße@` and `strasse@` apart).
    db.execute(
        "UPDATE users SET email = 'Straße@example.de', email_normalized = 'straße@example.de' \
         WHERE email = 'placeholder@example.de'",
    )
    .await;
    db.execute(
        "UPDATE users SET email_normalized = lower(email), email_normalization = 1 \
         WHERE email <> 'strasse@example.de'",
    )
    .await;
    assert_eq!(
        app.login("ada@bücher.example", PASSWORD).await.status(),
        401,
        "not found under the new rules yet"
    );
    let done = latchkey_core::account::renormalize_emails(&*app.state.store)
        .await
        .unwrap();
    assert_eq!((done.updated, done.collisions), (1, 1), "{done:?}");
    assert_eq!(
        app.login("ADA@xn--bcher-kva.example", PASSWORD)
            .await
            .status(),
        200
    );
    // The account that already held `strasse@` keeps it.
    assert_eq!(
        app.login("strasse@example.de", PASSWORD).await.status(),
        200
    );
    let again = latchkey_core::account::renormalize_emails(&*app.state.store)
        .await
        .unwrap();
    assert_eq!(again, latchkey_core::account::Renormalized::default());
}

#[tokio::test]
async fn names_reach_only_verified_addresses_and_never_as_links() {
    let app = TestApp::builder()
        .configure(|c| c.rate_limit.enabled = false)
        .spawn()
        .await;
    // Someone signs up with another person's address and a name of their own.
    let spoof = "Visit evil.example to claim your prize";
    let r = post(
        &app,
        "/v1/signup",
        &json!({"email": "victim@example.com", "password": PASSWORD, "name": spoof}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let mail = &app.wait_for_mails("victim@example.com", 1).await[0];
    assert!(
        !mail.contains("evil.example") && !mail.contains("prize"),
        "{mail}"
    );

    // A verified account is greeted by its name...
    let ada = app.create_user("ada@example.com", PASSWORD, true).await;
    app.state
        .store
        .update_name(ada, Some("Ada Lovelace"), app.state.clock.now())
        .await
        .unwrap();
    let r = post(
        &app,
        "/v1/password/forgot",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let mail = &app.wait_for_mails("ada@example.com", 1).await[0];
    assert!(mail.contains("Hello Ada Lovelace,"), "{mail}");
    // ...but its name never goes to the new address of an email change.
    let login: Value = app
        .login("ada@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let r = app
        .client
        .post(app.url("/v1/me/email"))
        .bearer_auth(login["access_token"].as_str().unwrap())
        .json(&json!({"new_email": "someone@else.example", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let mail = &app.wait_for_mails("someone@else.example", 1).await[0];
    assert!(!mail.contains("Ada Lovelace"), "{mail}");

    // A name that reads as a link is left out even for a verified address.
    let bob = app.create_user("bob@example.com", PASSWORD, true).await;
    app.state
        .store
        .update_name(bob, Some("support at pay.pal"), app.state.clock.now())
        .await
        .unwrap();
    let r = post(
        &app,
        "/v1/password/forgot",
        &json!({"email": "bob@example.com"}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let mail = &app.wait_for_mails("bob@example.com", 1).await[0];
    assert!(
        mail.contains("Hello,") && !mail.contains("pay.pal"),
        "{mail}"
    );
}
