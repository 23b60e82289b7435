//! The core sign-in flow end to end: login, access tokens, refresh rotation and
//! reuse detection, logout, sessions, password change — with hostile inputs.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use latchkey_core::clock::ManualClock;
use latchkey_testkit::app::TestApp;
use serde_json::{json, Value};
use time::macros::datetime;

use crate::support::assert_problem;

const EMAIL: &str = "alice@example.com";
const PASSWORD: &str = "correct horse battery staple";

async fn app_with_user() -> TestApp {
    let app = TestApp::spawn().await;
    app.create_user(EMAIL, PASSWORD, true).await;
    app
}

async fn login_ok(app: &TestApp) -> Value {
    let r = app.login(EMAIL, PASSWORD).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

async fn me(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .get(app.url("/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/token/refresh"))
        .json(&json!({ "refresh_token": token }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn login_returns_the_documented_token_response_and_me_works() {
    let app = app_with_user().await;
    let body = login_ok(&app).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let refresh_token = body["refresh_token"].as_str().unwrap();
    assert!(refresh_token.starts_with("lk_rt_") && refresh_token.len() == 49);
    assert_eq!(body["user"]["email"], EMAIL);
    assert_eq!(body["user"]["email_verified"], true);
    assert_eq!(body["user"]["mfa"], json!({"totp": false, "webauthn": 0}));

    let access = body["access_token"].as_str().unwrap();
    let (header, claims) = crate::support::jwt_parts(access);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "EdDSA");
    for claim in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "nbf",
        "jti",
        "sid",
        "auth_time",
        "amr",
        "roles",
    ] {
        assert!(
            claims.get(claim).is_some(),
            "claim {claim} missing: {claims}"
        );
    }
    assert_eq!(claims["sid"], body["session_id"]);
    assert_eq!(claims["amr"], json!(["pwd"]));
    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    assert!(jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .any(|k| k["kid"] == header["kid"]));

    let r = me(&app, access).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let user: Value = r.json().await.unwrap();
    assert_eq!(user["id"], claims["sub"]);
}

#[tokio::test]
async fn unknown_email_and_wrong_password_are_indistinguishable() {
    let app = app_with_user().await;
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("request_id");
        v
    };
    let wrong = strip(
        assert_problem(
            app.login(EMAIL, "wrong password!!").await,
            401,
            "invalid_credentials",
        )
        .await,
    );
    let unknown = strip(
        assert_problem(
            app.login("nobody@example.com", PASSWORD).await,
            401,
            "invalid_credentials",
        )
        .await,
    );
    assert_eq!(wrong, unknown, "byte-identical apart from the request id");
}

#[tokio::test]
async fn email_case_and_spaces_do_not_matter() {
    let app = app_with_user().await;
    for variant in [
        "ALICE@EXAMPLE.COM",
        "  Alice@Example.com ",
        "alice@example.COM",
    ] {
        assert_eq!(
            app.login(variant, PASSWORD).await.status(),
            200,
            "{variant}"
        );
    }
}

#[tokio::test]
async fn unverified_and_disabled_accounts_are_revealed_only_after_the_password() {
    let app = TestApp::spawn().await;
    app.create_user("new@example.com", PASSWORD, false).await;
    assert_problem(
        app.login("new@example.com", "not the password").await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_problem(
        app.login("new@example.com", PASSWORD).await,
        403,
        "email_not_verified",
    )
    .await;
}

#[tokio::test]
async fn hostile_login_bodies_are_rejected() {
    let app = app_with_user().await;
    let post = |body: Value| app.client.post(app.url("/v1/login")).json(&body).send();
    let r = post(json!({"email": "alice\u{0}@example.com", "password": PASSWORD}))
        .await
        .unwrap();
    let p = assert_problem(r, 400, "validation_failed").await;
    assert_eq!(p["errors"][0]["field"], "email");
    let r =
        post(json!({"email": format!("{}@example.com", "a".repeat(300)), "password": PASSWORD}))
            .await
            .unwrap();
    assert_problem(r, 400, "validation_failed").await;
    let r = post(json!({"email": EMAIL, "password": "x".repeat(10_000)}))
        .await
        .unwrap();
    assert_problem(r, 400, "validation_failed").await;
    let r = post(json!({"email": EMAIL, "password": PASSWORD, "is_admin": true}))
        .await
        .unwrap();
    assert_problem(r, 400, "malformed_request").await;
    let r = post(json!({"email": EMAIL})).await.unwrap();
    assert_problem(r, 400, "malformed_request").await;
}

#[tokio::test]
async fn a_bcrypt_hash_is_upgraded_to_argon2id_at_login() {
    let app = TestApp::spawn().await;
    let hash = bcrypt::hash(PASSWORD, 4)
        .unwrap()
        .replacen("$2b$", "$2y$", 1);
    let id = app.create_user_with_hash(EMAIL, &hash, true).await;
    assert_eq!(app.login(EMAIL, PASSWORD).await.status(), 200);
    let stored = app
        .state
        .store
        .user_by_id(id)
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    assert_eq!(
        app.login(EMAIL, PASSWORD).await.status(),
        200,
        "the new hash works"
    );
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_session() {
    let app = app_with_user().await;
    let first = login_ok(&app).await;
    let t1 = first["refresh_token"].as_str().unwrap().to_owned();
    let r = refresh(&app, &t1).await;
    assert_eq!(r.status(), 200);
    let second: Value = r.json().await.unwrap();
    let t2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(t1, t2);
    assert_eq!(second["session_id"], first["session_id"]);
    let access2 = second["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(&app, &access2).await.status(), 200);

    // The stolen old token comes back: the family dies, and with it the session.
    assert_problem(refresh(&app, &t1).await, 401, "invalid_token").await;
    assert_problem(refresh(&app, &t2).await, 401, "invalid_token").await;
    assert_problem(me(&app, &access2).await, 401, "unauthorized").await;
    let uid = second["user"]["id"].as_str().unwrap().parse().unwrap();
    let events = app.state.store.user_events(uid, 10).await.unwrap();
    assert!(events
        .iter()
        .any(|e| e.kind.as_str() == "refresh_reuse_detected"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_refreshes_with_one_token_give_exactly_one_success() {
    // The per-session refresh limit (30/min) would answer some of the 50 with
    // 429 before they reach the race this test is about.
    let app = TestApp::builder()
        .configure(|c| c.rate_limit.enabled = false)
        .spawn()
        .await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let app = Arc::new(app);
    let body = login_ok(&app).await;
    let token = body["refresh_token"].as_str().unwrap().to_owned();
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let app = Arc::clone(&app);
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            refresh(&app, &token).await.status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 401),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn garbage_refresh_tokens_are_invalid_token() {
    let app = app_with_user().await;
    for token in [
        "",
        "lk_rt_",
        "nope",
        &"lk_rt_".repeat(1000),
        &format!("lk_rt_{}", "A".repeat(43)),
    ] {
        assert_problem(refresh(&app, token).await, 401, "invalid_token").await;
    }
}

#[tokio::test]
async fn logout_kills_the_access_token_at_once_and_the_refresh_token() {
    let app = app_with_user().await;
    let body = login_ok(&app).await;
    let access = body["access_token"].as_str().unwrap();
    let r = app
        .client
        .post(app.url("/v1/logout"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_problem(me(&app, access).await, 401, "unauthorized").await;
    assert_problem(
        refresh(&app, body["refresh_token"].as_str().unwrap()).await,
        401,
        "invalid_token",
    )
    .await;
    let r = app
        .client
        .post(app.url("/v1/logout"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "unauthorized").await;
}

#[tokio::test]
async fn logout_all_sessions_ends_every_device() {
    let app = app_with_user().await;
    let a = login_ok(&app).await;
    let b = login_ok(&app).await;
    let r = app
        .client
        .post(app.url("/v1/logout"))
        .bearer_auth(a["access_token"].as_str().unwrap())
        .json(&json!({"all_sessions": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_problem(
        me(&app, b["access_token"].as_str().unwrap()).await,
        401,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn each_login_is_a_new_session_and_the_limit_evicts_the_oldest() {
    let app = TestApp::builder()
        .configure(|c| c.sessions.max_per_user = 2)
        .spawn()
        .await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let s1 = login_ok(&app).await;
    let s2 = login_ok(&app).await;
    assert_ne!(
        s1["session_id"], s2["session_id"],
        "no fixation: a new id per sign-in"
    );
    let s3 = login_ok(&app).await;
    assert_problem(
        me(&app, s1["access_token"].as_str().unwrap()).await,
        401,
        "unauthorized",
    )
    .await;
    for s in [&s2, &s3] {
        assert_eq!(
            me(&app, s["access_token"].as_str().unwrap()).await.status(),
            200
        );
    }
}

#[tokio::test]
async fn sessions_can_be_listed_and_revoked_but_only_ones_own() {
    let app = app_with_user().await;
    app.create_user("mallory@example.com", PASSWORD, true).await;
    let a = login_ok(&app).await;
    let b = login_ok(&app).await;
    let m: Value = app
        .login("mallory@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let token = a["access_token"].as_str().unwrap();
    let list: Value = app
        .client
        .get(app.url("/v1/me/sessions"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items
        .iter()
        .any(|s| s["id"] == a["session_id"] && s["current"] == true));
    assert!(items
        .iter()
        .any(|s| s["id"] == b["session_id"] && s["current"] == false));
    assert_eq!(items[0]["ip"], "127.0.0.1");

    let delete = |id: &str| {
        app.client
            .delete(app.url(&format!("/v1/me/sessions/{id}")))
            .bearer_auth(token)
            .send()
    };
    assert_problem(
        delete(m["session_id"].as_str().unwrap()).await.unwrap(),
        404,
        "not_found",
    )
    .await;
    assert_problem(delete("not-a-uuid").await.unwrap(), 404, "not_found").await;
    assert_eq!(
        delete(b["session_id"].as_str().unwrap())
            .await
            .unwrap()
            .status(),
        204
    );
    assert_problem(
        me(&app, b["access_token"].as_str().unwrap()).await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(
        me(&app, m["access_token"].as_str().unwrap()).await.status(),
        200,
        "mallory unaffected"
    );

    let c = login_ok(&app).await;
    let r = app
        .client
        .delete(app.url("/v1/me/sessions"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        me(&app, token).await.status(),
        200,
        "the current session is kept by default"
    );
    assert_problem(
        me(&app, c["access_token"].as_str().unwrap()).await,
        401,
        "unauthorized",
    )
    .await;
    let r = app
        .client
        .delete(app.url("/v1/me/sessions?except_current=maybe"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_problem(r, 400, "malformed_request").await;

    // Both endings are in the user's security events: the single one names
    // the session; Mallory's record has none of them.
    assert_eq!(
        session_revoked_events(&app, EMAIL).await,
        vec![None, Some(b["session_id"].as_str().unwrap().to_owned())]
    );
    assert!(session_revoked_events(&app, "mallory@example.com")
        .await
        .is_empty());
}

/// The `session_revoked` events of `email`'s account, newest first, by the
/// session they name.
async fn session_revoked_events(app: &TestApp, email: &str) -> Vec<Option<String>> {
    let user = app.state.store.user_by_email(email).await.unwrap().unwrap();
    app.state
        .store
        .user_events(user.id, 50)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind.as_str() == "session_revoked")
        .map(|e| e.session_id.map(|id| id.to_string()))
        .collect()
}

#[tokio::test]
async fn changing_the_password_revokes_other_sessions() {
    let app = app_with_user().await;
    let a = login_ok(&app).await;
    let b = login_ok(&app).await;
    let token = a["access_token"].as_str().unwrap();
    let change = |current: &str, new: &str| {
        app.client
            .post(app.url("/v1/me/password"))
            .bearer_auth(token)
            .json(&json!({"current_password": current, "new_password": new}))
            .send()
    };
    assert_problem(
        change("wrong password!!", "another long password")
            .await
            .unwrap(),
        401,
        "invalid_credentials",
    )
    .await;
    let p = assert_problem(
        change(PASSWORD, "short").await.unwrap(),
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"][0]["code"], "too_short");
    assert_eq!(
        change(PASSWORD, "another long password")
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(me(&app, token).await.status(), 200, "this session stays");
    assert_problem(
        me(&app, b["access_token"].as_str().unwrap()).await,
        401,
        "unauthorized",
    )
    .await;
    assert_problem(app.login(EMAIL, PASSWORD).await, 401, "invalid_credentials").await;
    assert_eq!(
        app.login(EMAIL, "another long password").await.status(),
        200
    );
}

#[tokio::test]
async fn patch_me_changes_the_name_with_bounds() {
    let app = app_with_user().await;
    let token = login_ok(&app).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let patch = |body: Value| {
        app.client
            .patch(app.url("/v1/me"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let r = patch(json!({"name": "  Alice Liddell "})).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["name"], "Alice Liddell");
    assert_problem(
        patch(json!({"name": "a".repeat(101)})).await.unwrap(),
        400,
        "validation_failed",
    )
    .await;
    assert_problem(
        patch(json!({"name": "nul\u{0}"})).await.unwrap(),
        400,
        "validation_failed",
    )
    .await;
    assert_problem(
        patch(json!({"email": "x@example.com"})).await.unwrap(),
        400,
        "malformed_request",
    )
    .await;
}

fn forge(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string()),
        B64.encode(signature)
    )
}

#[tokio::test]
async fn forged_and_tampered_tokens_are_refused() {
    let app = app_with_user().await;
    let access = login_ok(&app).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (header, claims) = crate::support::jwt_parts(&access);
    let signature = B64.decode(access.rsplit('.').next().unwrap()).unwrap();

    let none = forge(
        &json!({"alg": "none", "typ": "at+jwt", "kid": header["kid"]}),
        &claims,
        b"",
    );
    let mut tampered_claims = claims.clone();
    tampered_claims["sub"] = json!(uuid::Uuid::now_v7().to_string());
    let tampered = forge(&header, &tampered_claims, &signature);
    let unknown_kid = forge(
        &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "not-ours"}),
        &claims,
        &signature,
    );
    let wrong_typ = forge(
        &json!({"alg": "EdDSA", "typ": "JWT", "kid": header["kid"]}),
        &claims,
        &signature,
    );

    // HS256 keyed with our public key (the classic algorithm-confusion attack).
    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let public = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    let hs_header = json!({"alg": "HS256", "typ": "at+jwt", "kid": header["kid"]});
    let signing_input = format!(
        "{}.{}",
        B64.encode(hs_header.to_string()),
        B64.encode(claims.to_string())
    );
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(public.as_bytes()).unwrap();
    hmac::Mac::update(&mut mac, signing_input.as_bytes());
    let hs256 = format!(
        "{signing_input}.{}",
        B64.encode(hmac::Mac::finalize(mac).into_bytes())
    );

    // A token from another latchkey (another key) is not ours.
    let other = app_with_user().await;
    let foreign = login_ok(&other).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    for (name, token) in [
        ("alg none", none.as_str()),
        ("tampered payload", tampered.as_str()),
        ("unknown kid", unknown_kid.as_str()),
        ("wrong typ", wrong_typ.as_str()),
        ("HS256 with the public key", hs256.as_str()),
        ("foreign key", foreign.as_str()),
        ("garbage", "a.b.c"),
        ("empty", ""),
    ] {
        let r = me(&app, token).await;
        assert_eq!(r.status(), 401, "{name}");
        assert_problem(r, 401, "unauthorized").await;
    }
    let r = app
        .client
        .get(app.url("/v1/me"))
        .header("authorization", format!("Basic {access}"))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "unauthorized").await;
    let r = app.client.get(app.url("/v1/me")).send().await.unwrap();
    assert_problem(r, 401, "unauthorized").await;
    assert_eq!(
        me(&app, &access).await.status(),
        200,
        "the genuine token still works"
    );
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused_with_at_most_a_minute_of_leeway() {
    let clock = ManualClock::new(datetime!(2026-06-01 10:00 UTC));
    let app = TestApp::builder()
        .clock(Arc::new(clock.clone()))
        .spawn()
        .await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let access = login_ok(&app).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    clock.advance(time::Duration::minutes(15) + time::Duration::seconds(30));
    assert_eq!(
        me(&app, &access).await.status(),
        200,
        "within the 60 s leeway"
    );
    clock.advance(time::Duration::seconds(31));
    assert_problem(me(&app, &access).await, 401, "unauthorized").await;

    clock.advance(time::Duration::minutes(-20));
    let fresh = login_ok(&app).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    clock.advance(time::Duration::seconds(-61));
    assert_problem(me(&app, &fresh).await, 401, "unauthorized").await;
}

#[tokio::test]
async fn discovery_names_the_issuer_and_keys() {
    let app = TestApp::spawn().await;
    let doc: Value = app
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], app.base_url.as_str());
    assert_eq!(
        doc["jwks_uri"],
        format!("{}/.well-known/jwks.json", app.base_url)
    );
    assert_eq!(
        doc["introspection_endpoint"],
        format!("{}/v1/introspect", app.base_url)
    );
    assert_eq!(
        doc["introspection_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic"])
    );
    assert_eq!(
        doc["latchkey_openapi_uri"],
        format!("{}/v1/openapi.json", app.base_url)
    );
    // Every endpoint listed exists; no ID-token metadata (there are no ID tokens),
    // no token_endpoint (there is no OAuth 2.0 token endpoint).
    for (name, value) in doc.as_object().unwrap() {
        if let Some(url) = value.as_str().filter(|v| v.starts_with("http")) {
            if name != "issuer" {
                let status = app.client.get(url).send().await.unwrap().status();
                assert_ne!(status, 404, "{name}");
            }
        }
    }
    assert!(doc.get("id_token_signing_alg_values_supported").is_none());
    assert!(doc.get("token_endpoint").is_none());
    let jwks = app.get("/.well-known/jwks.json").await;
    assert_eq!(jwks.headers()["cache-control"], "public, max-age=300");
    let keys: Value = jwks.json().await.unwrap();
    let key = &keys["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["use"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("sig"))
    );
    assert!(key.get("d").is_none(), "no private part");
}

#[tokio::test]
async fn a_revocation_made_by_another_node_is_seen_within_seconds() {
    let app = app_with_user().await;
    let body = login_ok(&app).await;
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        me(&app, token).await.status(),
        200,
        "now remembered by this node"
    );
    // Another node revokes through the shared database, bypassing this node's cache.
    let uid = body["user"]["id"].as_str().unwrap().parse().unwrap();
    let sid = body["session_id"].as_str().unwrap().parse().unwrap();
    let revoked = app
        .state
        .store
        .revoke_session(
            uid,
            sid,
            latchkey_core::session::RevokeReason::UserRevoked,
            app.state.clock.now(),
        )
        .await
        .unwrap();
    assert!(revoked);
    let mut status = 200;
    for _ in 0..100 {
        status = me(&app, token).await.status().as_u16();
        if status == 401 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        status, 401,
        "revocation visible once the cache entry expires"
    );
}

#[tokio::test]
async fn the_profile_cache_shows_local_changes_at_once_and_other_nodes_changes_within_seconds() {
    let app = app_with_user().await;
    let body = login_ok(&app).await;
    let token = body["access_token"].as_str().unwrap();
    let uid = body["user"]["id"].as_str().unwrap().parse().unwrap();
    let name = |r: Value| r["name"].clone();
    assert_eq!(
        name(me(&app, token).await.json().await.unwrap()),
        Value::Null
    );

    // A change made through this node is visible immediately.
    let r = app
        .client
        .patch(app.url("/v1/me"))
        .bearer_auth(token)
        .json(&json!({"name": "Local"}))
        .send()
        .await
        .unwrap();
    assert_eq!(name(r.json().await.unwrap()), "Local");
    assert_eq!(name(me(&app, token).await.json().await.unwrap()), "Local");

    // A change written by another node (straight to the shared database) shows
    // once the cached profile expires.
    app.state
        .store
        .update_name(uid, Some("Remote"), app.state.clock.now())
        .await
        .unwrap();
    let mut seen = Value::Null;
    for _ in 0..100 {
        seen = name(me(&app, token).await.json().await.unwrap());
        if seen == "Remote" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, "Remote");
}

const FIREFOX_LINUX: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0";
const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";

async fn login_from(app: &TestApp, ua: &str) -> Value {
    let r = app
        .client
        .post(app.url("/v1/login"))
        .header("user-agent", ua)
        .json(&json!({"email": EMAIL, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn refresh_from(app: &TestApp, ua: &str, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/token/refresh"))
        .header("user-agent", ua)
        .json(&json!({ "refresh_token": token }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_refresh_from_another_device_is_recorded_and_refused_when_bound() {
    // Not bound (default): allowed, but recorded.
    let app = app_with_user().await;
    let body = login_from(&app, FIREFOX_LINUX).await;
    let token = body["refresh_token"].as_str().unwrap();
    let same = refresh_from(&app, FIREFOX_LINUX, token).await;
    assert_eq!(same.status(), 200);
    let token = same.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        refresh_from(&app, SAFARI_IPHONE, &token).await.status(),
        200
    );
    let uid = body["user"]["id"].as_str().unwrap().parse().unwrap();
    let kinds: Vec<&str> = app
        .state
        .store
        .user_events(uid, 20)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "device_changed").count(),
        1,
        "{kinds:?}"
    );

    // Bound: refused, and the session ends.
    let app = TestApp::builder()
        .configure(|c| c.sessions.bind_device = true)
        .spawn()
        .await;
    app.create_user(EMAIL, PASSWORD, true).await;
    let body = login_from(&app, FIREFOX_LINUX).await;
    let token = body["refresh_token"].as_str().unwrap();
    assert_problem(
        refresh_from(&app, SAFARI_IPHONE, token).await,
        401,
        "invalid_token",
    )
    .await;
    assert_problem(
        me(&app, body["access_token"].as_str().unwrap()).await,
        401,
        "unauthorized",
    )
    .await;
}
