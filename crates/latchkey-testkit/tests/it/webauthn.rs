//! Passkeys end to end with a software authenticator: registration, listing,
//! renaming, removal, use as the second sign-in step, and the hostile cases
//! (another origin, a replayed or foreign challenge, a cloned authenticator).

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;

use latchkey_core::clock::ManualClock;
use latchkey_testkit::app::{TestApp, TestAppBuilder};
use latchkey_testkit::soft_authenticator::SoftAuthenticator;
use serde_json::{json, Value};
use time::macros::datetime;

use crate::support::{assert_problem, jwt_parts, refreshed_access_token};

const EMAIL: &str = "grace@example.com";
const PASSWORD: &str = "correct horse battery staple";
const ORIGIN: &str = "http://localhost:3000";

/// A server whose relying party is `ORIGIN`, with the verified user.
async fn app() -> TestApp {
    app_from(TestApp::builder()).await
}

/// [`app`] on a clock the test moves.
async fn app_on(clock: &ManualClock) -> TestApp {
    app_from(TestApp::builder().clock(Arc::new(clock.clone()))).await
}

async fn app_from(builder: TestAppBuilder) -> TestApp {
    let app = builder
        .configure(|c| {
            c.public_url = Some(ORIGIN.into());
            c.rate_limit.enabled = false;
        })
        .spawn()
        .await;
    app.create_user(EMAIL, PASSWORD, true).await;
    app
}

async fn access(app: &TestApp, email: &str) -> String {
    let r = app.login(email, PASSWORD).await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn start(app: &TestApp, token: &str, name: Option<&str>) -> (String, Value) {
    let body = name.map_or_else(|| json!({}), |n| json!({ "name": n }));
    let r = call(
        app,
        reqwest::Method::POST,
        "/v1/me/webauthn/register/start",
        token,
        Some(body),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    (
        body["challenge_id"].as_str().unwrap().to_owned(),
        body["options"].clone(),
    )
}

async fn finish(
    app: &TestApp,
    token: &str,
    challenge_id: &str,
    credential: Value,
) -> reqwest::Response {
    call(
        app,
        reqwest::Method::POST,
        "/v1/me/webauthn/register/finish",
        token,
        Some(json!({"challenge_id": challenge_id, "credential": credential})),
    )
    .await
}

/// Registers a passkey on `soft`; returns the finish response body.
async fn register(app: &TestApp, token: &str, soft: &mut SoftAuthenticator, name: &str) -> Value {
    let (id, options) = start(app, token, Some(name)).await;
    let r = finish(app, token, &id, soft.register(&options)).await;
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn list(app: &TestApp, token: &str) -> Vec<Value> {
    let r = call(app, reqwest::Method::GET, "/v1/me/webauthn", token, None).await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["items"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn passkeys_are_registered_listed_renamed_and_removed() {
    let app = app().await;
    let token = access(&app, EMAIL).await;
    let mut soft = SoftAuthenticator::new(ORIGIN);
    let (challenge_id, options) = start(&app, &token, Some("Laptop")).await;
    let pk = &options["publicKey"];
    assert_eq!(pk["rp"]["id"], "localhost");
    assert_eq!(pk["authenticatorSelection"]["userVerification"], "required");
    assert_eq!(pk["user"]["name"], EMAIL);
    let r = finish(&app, &token, &challenge_id, soft.register(&options)).await;
    assert_eq!(r.status(), 201);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["name"], "Laptop");
    assert_eq!(first["backup_eligible"], false);
    assert_eq!(
        first["recovery_codes"].as_array().unwrap().len(),
        10,
        "first factor: codes"
    );
    // The challenge was single use.
    let r = finish(&app, &token, &challenge_id, soft.register(&options)).await;
    assert_problem(r, 401, "invalid_token").await;

    // The registering session stays; signing in now takes two steps.
    let r = call(&app, reqwest::Method::GET, "/v1/me", &token, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        login_mfa_required(&app).await["methods"],
        json!(["webauthn", "recovery_code"])
    );
    let token = second_step(&app, &mut soft).await;
    // A second passkey: the first is excluded at creation and no new codes come.
    let (id2, options) = start(&app, &token, None).await;
    let excluded = options["publicKey"]["excludeCredentials"]
        .as_array()
        .unwrap();
    assert_eq!(excluded.len(), 1);
    let mut phone = SoftAuthenticator::new(ORIGIN);
    phone.synced = true;
    let r = finish(&app, &token, &id2, phone.register(&options)).await;
    assert_eq!(r.status(), 201);
    let second: Value = r.json().await.unwrap();
    assert_eq!(second["name"], "Passkey");
    assert_eq!(second["backup_eligible"], true);
    assert!(second.get("recovery_codes").is_none());
    let token = second_step(&app, &mut soft).await;

    let items = list(&app, &token).await;
    assert_eq!(items.len(), 2);
    let me: Value = call(&app, reqwest::Method::GET, "/v1/me", &token, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["mfa"]["webauthn"], 2);
    let id = items[0]["id"].as_str().unwrap();
    assert!(items[0]["last_used_at"].is_string(), "{items:?}");
    let r = call(
        &app,
        reqwest::Method::PATCH,
        &format!("/v1/me/webauthn/{id}"),
        &token,
        Some(json!({"name": "Work laptop"})),
    )
    .await;
    assert_eq!(r.status(), 204);
    for bad in ["", "   ", &"x".repeat(65), "tab\there"] {
        let r = call(
            &app,
            reqwest::Method::PATCH,
            &format!("/v1/me/webauthn/{id}"),
            &token,
            Some(json!({ "name": bad })),
        )
        .await;
        assert_problem(r, 400, "validation_failed").await;
    }
    assert_eq!(list(&app, &token).await[0]["name"], "Work laptop");

    another_user_cannot_touch(&app, id).await;

    let r = call(
        &app,
        reqwest::Method::DELETE,
        &format!("/v1/me/webauthn/{id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
    assert_eq!(list(&app, &token).await.len(), 1);
    let mails = app.wait_for_mails(EMAIL, 3).await;
    assert!(mails
        .iter()
        .any(|m| m.contains("A sign-in factor was removed")));
}

/// A second user sees no passkey of the first and cannot rename or remove one.
async fn another_user_cannot_touch(app: &TestApp, id: &str) {
    app.create_user("eve@example.com", PASSWORD, true).await;
    let eve = access(app, "eve@example.com").await;
    assert!(list(app, &eve).await.is_empty());
    let r = call(
        app,
        reqwest::Method::DELETE,
        &format!("/v1/me/webauthn/{id}"),
        &eve,
        None,
    )
    .await;
    assert_problem(r, 404, "not_found").await;
    let r = call(
        app,
        reqwest::Method::PATCH,
        &format!("/v1/me/webauthn/{id}"),
        &eve,
        Some(json!({"name": "mine"})),
    )
    .await;
    assert_problem(r, 404, "not_found").await;
}

async fn login_mfa_required(app: &TestApp) -> Value {
    let r = app.login(EMAIL, PASSWORD).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["mfa_required"], true, "{body}");
    body
}

async fn answer(app: &TestApp, mfa_token: &str, credential: Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/login/mfa"))
        .json(&json!({"mfa_token": mfa_token, "method": "webauthn", "credential": credential}))
        .send()
        .await
        .unwrap()
}

/// Password, then the passkey on `soft`; returns the access token.
async fn second_step(app: &TestApp, soft: &mut SoftAuthenticator) -> String {
    let body = login_mfa_required(app).await;
    let r = answer(
        app,
        body["mfa_token"].as_str().unwrap(),
        soft.assert(&body["webauthn"]),
    )
    .await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_passkey_answers_the_second_step_and_amr_says_which_kind() {
    let app = app().await;
    let token = access(&app, EMAIL).await;
    let mut soft = SoftAuthenticator::new(ORIGIN);
    register(&app, &token, &mut soft, "Key").await;
    let body = login_mfa_required(&app).await;
    let options = &body["webauthn"]["publicKey"];
    assert_eq!(options["rpId"], "localhost");
    assert_eq!(options["allowCredentials"].as_array().unwrap().len(), 1);
    let r = answer(
        &app,
        body["mfa_token"].as_str().unwrap(),
        soft.assert(&body["webauthn"]),
    )
    .await;
    assert_eq!(r.status(), 200);
    let tokens: Value = r.json().await.unwrap();
    let (_, claims) = jwt_parts(tokens["access_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["pwd", "hwk", "mfa"]));

    // A synced passkey is a software key.
    let mut synced = SoftAuthenticator::new(ORIGIN);
    synced.synced = true;
    register(
        &app,
        tokens["access_token"].as_str().unwrap(),
        &mut synced,
        "Phone",
    )
    .await;
    let body = login_mfa_required(&app).await;
    let mut options = body["webauthn"].clone();
    options["publicKey"]["allowCredentials"] = json!([]);
    let mut only_synced = synced.clone();
    let r = answer(
        &app,
        body["mfa_token"].as_str().unwrap(),
        only_synced.assert(&options),
    )
    .await;
    assert_eq!(r.status(), 200);
    let (_, claims) = jwt_parts(
        r.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap(),
    );
    assert_eq!(claims["amr"], json!(["pwd", "swk", "mfa"]));
}

#[tokio::test]
async fn another_origin_a_replayed_or_foreign_challenge_and_a_clone_are_refused() {
    let app = app().await;
    let token = access(&app, EMAIL).await;

    // Registration from a page of another origin.
    let mut evil = SoftAuthenticator::new("http://localhost.evil.test:3000");
    let (id, options) = start(&app, &token, None).await;
    let r = finish(&app, &token, &id, evil.register(&options)).await;
    assert_problem(r, 400, "validation_failed").await;
    // A challenge started by another user cannot be finished by this one.
    app.create_user("eve@example.com", PASSWORD, true).await;
    let eve = access(&app, "eve@example.com").await;
    let (eve_challenge, eve_options) = start(&app, &eve, None).await;
    let mut soft = SoftAuthenticator::new(ORIGIN);
    let r = finish(&app, &token, &eve_challenge, soft.register(&eve_options)).await;
    assert_problem(r, 401, "invalid_token").await;
    let r = finish(
        &app,
        &token,
        "01234567-89ab-7def-8123-456789abcdef",
        json!({}),
    )
    .await;
    assert_problem(r, 401, "invalid_token").await;

    let mut soft = SoftAuthenticator::new(ORIGIN);
    register(&app, &token, &mut soft, "Key").await;

    // An assertion made for another origin.
    let body = login_mfa_required(&app).await;
    let mut wrong_origin = soft.clone();
    wrong_origin.origin = "http://localhost.evil.test:3000".into();
    let r = answer(
        &app,
        body["mfa_token"].as_str().unwrap(),
        wrong_origin.assert(&body["webauthn"]),
    )
    .await;
    assert_problem(r, 401, "invalid_mfa_code").await;
    // The passkey ceremony of that sign-in is spent: even a good answer is refused.
    let r = answer(
        &app,
        body["mfa_token"].as_str().unwrap(),
        soft.assert(&body["webauthn"]),
    )
    .await;
    assert_problem(r, 401, "invalid_mfa_code").await;
    // A malformed credential is a wrong answer too; a missing one is a bad request.
    let body = login_mfa_required(&app).await;
    let mfa_token = body["mfa_token"].as_str().unwrap();
    assert_problem(
        answer(&app, mfa_token, json!({"id": "x"})).await,
        401,
        "invalid_mfa_code",
    )
    .await;
    let r = app
        .client
        .post(app.url("/v1/login/mfa"))
        .json(&json!({"mfa_token": mfa_token, "method": "webauthn"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "validation_failed").await;

    // A cloned authenticator: the copy's counter does not move past the original's.
    let mut clone = soft.clone();
    second_step(&app, &mut soft).await;
    let body = login_mfa_required(&app).await;
    let r = answer(
        &app,
        body["mfa_token"].as_str().unwrap(),
        clone.assert(&body["webauthn"]),
    )
    .await;
    assert_problem(r, 401, "invalid_mfa_code").await;
    let user = app.state.store.user_by_email(EMAIL).await.unwrap().unwrap();
    let kinds: Vec<String> = app
        .state
        .store
        .user_events(user.id, 50)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind.as_str().to_owned())
        .collect();
    assert!(
        kinds.iter().any(|k| k == "passkey_clone_suspected"),
        "{kinds:?}"
    );
    // The genuine authenticator keeps working.
    second_step(&app, &mut soft).await;
}

#[tokio::test]
async fn without_a_domain_name_passkeys_are_unavailable() {
    let app = TestApp::spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let token = access(&app, EMAIL).await;
    let r = call(
        &app,
        reqwest::Method::POST,
        "/v1/me/webauthn/register/start",
        &token,
        Some(json!({})),
    )
    .await;
    assert_problem(r, 503, "unavailable").await;
}

async fn passwordless(
    app: &TestApp,
    soft: &mut SoftAuthenticator,
    extra: Value,
) -> reqwest::Response {
    let r = app
        .client
        .post(app.url("/v1/login/webauthn/start"))
        .json(&json!({ "email": EMAIL }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let options = &body["options"]["publicKey"];
    assert_eq!(options["rpId"], "localhost");
    assert!(
        options["allowCredentials"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "options must not depend on the address: {options}"
    );
    let mut request = json!({
        "challenge_id": body["challenge_id"],
        "credential": soft.assert(&body["options"]),
    });
    for (k, v) in extra.as_object().unwrap() {
        request[k] = v.clone();
    }
    app.client
        .post(app.url("/v1/login/webauthn/finish"))
        .header("origin", ORIGIN)
        .json(&request)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_discoverable_passkey_signs_in_without_a_password() {
    let app = app().await;
    let token = access(&app, EMAIL).await;
    let mut soft = SoftAuthenticator::new(ORIGIN);
    register(&app, &token, &mut soft, "Key").await;

    let r = passwordless(&app, &mut soft, json!({"remember_me": true})).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["user"]["email"], EMAIL);
    assert!(body["refresh_token"].is_string());
    let (_, claims) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["hwk", "mfa"]));

    // Cookie mode works from the allowed origin.
    let r = passwordless(&app, &mut soft, json!({"mode": "cookie"})).await;
    assert_eq!(r.status(), 200);
    assert!(r
        .headers()
        .get_all("set-cookie")
        .iter()
        .any(|c| c.to_str().unwrap().starts_with("__Host-lk_session=")));

    // A challenge is single use.
    let start: Value = app
        .client
        .post(app.url("/v1/login/webauthn/start"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let finish = |credential: Value| {
        app.client
            .post(app.url("/v1/login/webauthn/finish"))
            .json(&json!({"challenge_id": start["challenge_id"], "credential": credential}))
            .send()
    };
    let answer = soft.assert(&start["options"]);
    assert_eq!(finish(answer.clone()).await.unwrap().status(), 200);
    assert_problem(finish(answer).await.unwrap(), 401, "invalid_token").await;

    // Another origin and a cloned authenticator are refused.
    let mut evil = soft.clone();
    evil.origin = "http://localhost.evil.test:3000".into();
    assert_problem(
        passwordless(&app, &mut evil, json!({})).await,
        401,
        "invalid_mfa_code",
    )
    .await;
    let mut clone = soft.clone();
    assert_eq!(passwordless(&app, &mut soft, json!({})).await.status(), 200);
    assert_problem(
        passwordless(&app, &mut clone, json!({})).await,
        401,
        "invalid_mfa_code",
    )
    .await;
}

/// A passwordless sign-in answer whose credential JSON `tamper` changed.
async fn passwordless_tampered(
    app: &TestApp,
    soft: &mut SoftAuthenticator,
    tamper: impl FnOnce(&mut Value),
) -> reqwest::Response {
    let r = app
        .client
        .post(app.url("/v1/login/webauthn/start"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let mut credential = soft.assert(&body["options"]);
    tamper(&mut credential);
    app.client
        .post(app.url("/v1/login/webauthn/finish"))
        .header("origin", ORIGIN)
        .json(&json!({"challenge_id": body["challenge_id"], "credential": credential}))
        .send()
        .await
        .unwrap()
}

/// Password guesses cannot lock phishing-resistant sign-in, a forged
/// assertion naming the owner's user handle counts against nothing, and wrong
/// assertions of a real passkey lock only that passkey's sign-in.
#[tokio::test]
async fn passwordless_sign_in_has_its_own_lockout() {
    let app = app().await;
    let token = access(&app, EMAIL).await;
    let mut soft = SoftAuthenticator::new(ORIGIN);
    register(&app, &token, &mut soft, "Key").await;
    // Five wrong passwords lock the password sign-in...
    for _ in 0..5 {
        assert_problem(
            app.login(EMAIL, "wrong password!!").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    assert_problem(app.login(EMAIL, PASSWORD).await, 423, "account_locked").await;
    // ...not the passkey.
    assert_eq!(passwordless(&app, &mut soft, json!({})).await.status(), 200);

    // A stranger's assertions with the owner's user handle and a credential
    // the account does not have: refused, counted nowhere.
    for i in 0..8u8 {
        let r = passwordless_tampered(&app, &mut soft, |c| {
            let forged = B64.encode([i; 32]);
            c["id"] = json!(forged);
            c["rawId"] = json!(forged);
        })
        .await;
        assert_problem(r, 401, "invalid_mfa_code").await;
    }
    assert_eq!(passwordless(&app, &mut soft, json!({})).await.status(), 200);

    // Wrong signatures of the real passkey count on its own counter.
    for _ in 0..5 {
        let r = passwordless_tampered(&app, &mut soft, |c| {
            let sig = c["response"]["signature"].as_str().unwrap().to_owned();
            let mut bytes = B64.decode(sig).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            c["response"]["signature"] = json!(B64.encode(bytes));
        })
        .await;
        assert_problem(r, 401, "invalid_mfa_code").await;
    }
    assert_problem(
        passwordless(&app, &mut soft, json!({})).await,
        423,
        "account_locked",
    )
    .await;
}

/// Waits until a mail to the user contains `text` (the outbox writes after
/// the answer).
async fn wait_for_mail_containing(app: &TestApp, text: &str) {
    for count in 1..=20 {
        let mails = app.wait_for_mails(EMAIL, count).await;
        if mails.iter().any(|m| m.contains(text)) {
            return;
        }
    }
    panic!("no mail containing {text:?}");
}

#[tokio::test]
async fn adding_or_removing_a_passkey_signs_out_the_other_sessions_and_mails_the_user() {
    let app = app().await;
    let token = access(&app, EMAIL).await;
    let other = access(&app, EMAIL).await;
    let me = |token: &str| {
        app.client
            .get(app.url("/v1/me"))
            .bearer_auth(token.to_owned())
            .send()
    };
    assert_eq!(me(&other).await.unwrap().status(), 200);
    let mut soft = SoftAuthenticator::new(ORIGIN);
    let added = register(&app, &token, &mut soft, "Key").await;
    assert_problem(me(&other).await.unwrap(), 401, "unauthorized").await;
    assert_eq!(me(&token).await.unwrap().status(), 200);
    wait_for_mail_containing(&app, "A sign-in factor was added to your latchkey account").await;

    let other = second_step(&app, &mut soft).await;
    assert_eq!(me(&other).await.unwrap().status(), 200);
    let id = added["id"].as_str().unwrap();
    let r = call(
        &app,
        reqwest::Method::DELETE,
        &format!("/v1/me/webauthn/{id}"),
        &token,
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
    assert_problem(me(&other).await.unwrap(), 401, "unauthorized").await;
    assert_eq!(me(&token).await.unwrap().status(), 200);
    wait_for_mail_containing(
        &app,
        "A sign-in factor was removed from your latchkey account",
    )
    .await;
}

#[tokio::test]
async fn an_expired_challenge_is_refused_at_registration_and_passwordless_sign_in() {
    let clock = ManualClock::new(datetime!(2026-11-23 10:00:00 UTC));
    let app = app_on(&clock).await;
    let token = access(&app, EMAIL).await;
    let mut soft = SoftAuthenticator::new(ORIGIN);

    // Registration: finished 5 minutes and 1 second after the start.
    let (id, options) = start(&app, &token, Some("Late")).await;
    let credential = soft.register(&options);
    clock.advance(time::Duration::seconds(301));
    assert_problem(
        finish(&app, &token, &id, credential).await,
        401,
        "invalid_token",
    )
    .await;
    assert!(list(&app, &token).await.is_empty());

    // Passwordless sign-in with a passkey registered in time.
    let token = access(&app, EMAIL).await;
    // (A fresh authenticator: the first one holds the refused credential.)
    let mut soft = SoftAuthenticator::new(ORIGIN);
    register(&app, &token, &mut soft, "Key").await;
    let start: Value = app
        .client
        .post(app.url("/v1/login/webauthn/start"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let answer = soft.assert(&start["options"]);
    clock.advance(time::Duration::seconds(301));
    let r = app
        .client
        .post(app.url("/v1/login/webauthn/finish"))
        .json(&json!({"challenge_id": start["challenge_id"], "credential": answer}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "invalid_token").await;
    // In time, the same passkey signs in.
    let r = passwordless(&app, &mut soft, json!({})).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn an_account_holds_at_most_twenty_passkeys() {
    let app = app().await;
    let token = access(&app, EMAIL).await;
    for i in 0..latchkey_core::auth::MAX_PASSKEYS {
        let mut soft = SoftAuthenticator::new(ORIGIN);
        register(&app, &token, &mut soft, &format!("Key {i}")).await;
    }
    let r = call(&app, reqwest::Method::GET, "/v1/me/webauthn", &token, None).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 20);
    assert_eq!(body["next_cursor"], Value::Null, "{body}");
    let r = call(
        &app,
        reqwest::Method::POST,
        "/v1/me/webauthn/register/start",
        &token,
        Some(json!({})),
    )
    .await;
    assert_problem(r, 409, "conflict").await;
}

#[tokio::test]
async fn passkeys_change_only_shortly_after_signing_in() {
    let clock = ManualClock::new(datetime!(2026-11-23 10:00:00 UTC));
    let app = app_on(&clock).await;
    let signed_in: Value = app.login(EMAIL, PASSWORD).await.json().await.unwrap();
    let token = signed_in["access_token"].as_str().unwrap().to_owned();
    let mut soft = SoftAuthenticator::new(ORIGIN);
    // Started 14 minutes after signing in: still allowed.
    clock.advance(time::Duration::minutes(14));
    let (id, options) = start(&app, &token, Some("Late")).await;
    let credential = soft.register(&options);
    // Finished two minutes later (the ceremony is still valid) with a token
    // refreshed from the same, now 16-minute-old, sign-in.
    clock.advance(time::Duration::minutes(2));
    let stale = refreshed_access_token(&app, signed_in["refresh_token"].as_str().unwrap()).await;
    assert_problem(
        finish(&app, &stale, &id, credential).await,
        403,
        "reauthentication_required",
    )
    .await;
    let r = call(
        &app,
        reqwest::Method::POST,
        "/v1/me/webauthn/register/start",
        &stale,
        Some(json!({})),
    )
    .await;
    assert_problem(r, 403, "reauthentication_required").await;
    assert!(list(&app, &stale).await.is_empty());
}

/// Registrations started while the account had room, finished together,
/// cannot push it past the maximum: the count is checked inside the insert.
#[tokio::test]
async fn parallel_registrations_never_exceed_twenty_passkeys() {
    let app = app().await;
    let token = access(&app, EMAIL).await;
    for i in 0..latchkey_core::auth::MAX_PASSKEYS - 2 {
        let mut soft = SoftAuthenticator::new(ORIGIN);
        register(&app, &token, &mut soft, &format!("Key {i}")).await;
    }
    let mut pending = Vec::new();
    for _ in 0..5 {
        let (id, options) = start(&app, &token, Some("Late")).await;
        let mut soft = SoftAuthenticator::new(ORIGIN);
        pending.push((id, soft.register(&options)));
    }
    let finishes = pending.into_iter().map(|(id, credential)| {
        let (app, token) = (&app, token.clone());
        async move { finish(app, &token, &id, credential).await.status().as_u16() }
    });
    let mut statuses = futures::future::join_all(finishes).await;
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 201, 409, 409, 409]);
    assert_eq!(list(&app, &token).await.len(), 20);
}

/// How many ceremonies are open (counted by removing them all as if an hour
/// had passed).
async fn open_ceremonies(app: &TestApp) -> u64 {
    app.state
        .store
        .delete_expired(
            latchkey_core::ports::Expired::WebauthnCeremonies,
            app.state.clock.now() + time::Duration::hours(1),
            1000,
        )
        .await
        .unwrap()
}

/// A flood of ceremony starts keeps a bounded number of rows: five per user
/// for registrations, five per client address for passwordless sign-in.
#[tokio::test]
async fn ceremony_starts_do_not_pile_up_rows() {
    let app = app().await;
    let token = access(&app, EMAIL).await;
    let mut registrations = Vec::new();
    for _ in 0..12 {
        registrations.push(start(&app, &token, None).await);
    }
    for _ in 0..12 {
        let r = app
            .client
            .post(app.url("/v1/login/webauthn/start"))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // The oldest registration was dropped; the newest still finishes.
    let (oldest, options) = &registrations[0];
    let mut soft = SoftAuthenticator::new(ORIGIN);
    let r = finish(&app, &token, oldest, soft.register(options)).await;
    assert_problem(r, 401, "invalid_token").await;
    let (newest, options) = &registrations[11];
    let mut soft = SoftAuthenticator::new(ORIGIN);
    assert_eq!(
        finish(&app, &token, newest, soft.register(options))
            .await
            .status(),
        201
    );
    let open = open_ceremonies(&app).await;
    assert_eq!(open, 9, "four registrations left and five sign-ins");
}

/// The attack: rotating IPv6 addresses inside one's own /64 to open
/// passwordless ceremonies without bound. They count per client network (the
/// /64, as the rate limits do), five open at most; another network has its
/// own five.
#[tokio::test]
async fn passwordless_ceremonies_count_per_ipv6_64_not_per_address() {
    let app = app_from(TestApp::builder().configure(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    }))
    .await;
    let start_from = |from: String| {
        let app = &app;
        async move {
            let r = app
                .client
                .post(app.url("/v1/login/webauthn/start"))
                .header("x-forwarded-for", from)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    for i in 1..=12 {
        start_from(format!("2001:db8:1:2::{i:x}")).await;
        start_from(format!("2001:db8:1:2:{i:x}::1")).await;
    }
    for _ in 0..7 {
        start_from("2001:db8:9:9::1".into()).await;
    }
    let open = open_ceremonies(&app).await;
    assert_eq!(open, 10, "five for each /64");
}
