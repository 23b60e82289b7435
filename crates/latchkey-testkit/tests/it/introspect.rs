//! `POST /v1/introspect` (RFC 7662): client authentication, both token kinds,
//! revocation visible at once, both body encodings.

use latchkey_server::config::IntrospectionClient;
use latchkey_testkit::app::TestApp;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::assert_problem;

const SECRET: &str = "s3cr3t-resource-server-credential-0123456789";

async fn app() -> TestApp {
    let hash: String =
        Sha256::digest(SECRET.as_bytes())
            .iter()
            .fold(String::new(), |mut out, b| {
                use std::fmt::Write;
                let _ = write!(out, "{b:02x}");
                out
            });
    let app = TestApp::builder()
        .configure(|c| {
            c.introspection.clients = vec![
                IntrospectionClient {
                    id: "api".into(),
                    secret_sha256: hash.clone(),
                },
                IntrospectionClient {
                    id: "other".into(),
                    secret_sha256: "0".repeat(64),
                },
            ];
        })
        .spawn()
        .await;
    app.create_user("rs@example.com", "correct horse battery staple", true)
        .await;
    app
}

async fn introspect(app: &TestApp, user: &str, secret: &str, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/introspect"))
        .basic_auth(user, Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

async fn active(app: &TestApp, token: &str) -> Value {
    let r = introspect(app, "api", SECRET, token).await;
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn clients_must_authenticate() {
    let app = app().await;
    for (user, secret) in [
        ("api", "wrong"),
        ("other", SECRET),
        ("nobody", SECRET),
        ("api", ""),
    ] {
        let r = introspect(&app, user, secret, "x").await;
        assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"latchkey\"");
        assert_problem(r, 401, "unauthorized").await;
    }
    let r = app
        .client
        .post(app.url("/v1/introspect"))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "unauthorized").await;
}

#[tokio::test]
async fn access_and_refresh_tokens_are_reported_and_revocation_shows_at_once() {
    let app = app().await;
    let login: Value = app
        .login("rs@example.com", "correct horse battery staple")
        .await
        .json()
        .await
        .unwrap();
    let access = login["access_token"].as_str().unwrap();
    let refresh = login["refresh_token"].as_str().unwrap();

    let a = active(&app, access).await;
    assert_eq!(
        (a["active"].as_bool(), a["token_type"].as_str()),
        (Some(true), Some("access_token"))
    );
    assert_eq!(a["sub"], login["user"]["id"]);
    assert_eq!(a["sid"], login["session_id"]);
    assert!(a["exp"].is_i64() && a["jti"].is_string());

    let r = active(&app, refresh).await;
    assert_eq!(
        (r["active"].as_bool(), r["token_type"].as_str()),
        (Some(true), Some("refresh_token"))
    );
    assert_eq!(r["sid"], login["session_id"]);

    // JSON bodies work too.
    let j: Value = app
        .client
        .post(app.url("/v1/introspect"))
        .basic_auth("api", Some(SECRET))
        .json(&json!({"token": access, "token_type_hint": "access_token"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(j["active"], true);

    let out = app
        .client
        .post(app.url("/v1/logout"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert_eq!(active(&app, access).await, json!({"active": false}));
    assert_eq!(active(&app, refresh).await, json!({"active": false}));
}

#[tokio::test]
async fn a_spent_refresh_token_and_garbage_are_inactive() {
    let app = app().await;
    let login: Value = app
        .login("rs@example.com", "correct horse battery staple")
        .await
        .json()
        .await
        .unwrap();
    let refresh = login["refresh_token"].as_str().unwrap();
    let r = app
        .client
        .post(app.url("/v1/token/refresh"))
        .json(&json!({"refresh_token": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(active(&app, refresh).await, json!({"active": false}));
    for garbage in ["", "a.b.c", "lk_rt_nope", &"x".repeat(20_000)] {
        assert_eq!(
            active(&app, garbage).await,
            json!({"active": false}),
            "{garbage:.20}"
        );
    }
    let r = app
        .client
        .post(app.url("/v1/introspect"))
        .basic_auth("api", Some(SECRET))
        .header("content-type", "text/plain")
        .body("token=x")
        .send()
        .await
        .unwrap();
    assert_problem(r, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn introspection_answers_with_the_current_roles_and_refuses_a_disabled_account() {
    use latchkey_core::auth::Caller;
    let app = app().await;
    let login: Value = app
        .login("rs@example.com", "correct horse battery staple")
        .await
        .json()
        .await
        .unwrap();
    let access = login["access_token"].as_str().unwrap();
    let refresh = login["refresh_token"].as_str().unwrap();
    let id: uuid::Uuid = login["user"]["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(active(&app, access).await["roles"], json!([]));

    let admin = &app.state.services.admin;
    let none = latchkey_core::auth::ClientContext::default();
    admin
        .create_role(
            Caller::Operator,
            "reader",
            "",
            &["users:read".into()],
            &none,
        )
        .await
        .unwrap();
    admin
        .grant(Caller::Operator, id, "reader", &none)
        .await
        .unwrap();
    // The token was issued without the role; introspection says what holds now.
    assert_eq!(active(&app, access).await["roles"], json!(["reader"]));
    assert_eq!(active(&app, refresh).await["roles"], json!(["reader"]));

    // Not an administrator: disabling it is allowed.
    admin.disable(Caller::Operator, id, &none).await.unwrap();
    assert_eq!(active(&app, access).await, json!({"active": false}));
    assert_eq!(active(&app, refresh).await, json!({"active": false}));
}
