//! The admin API (`/v1/admin/*`): permissions read from the store on every
//! request (never from the token), roles, the one-administrator guard,
//! cursor pagination, and disabling an account end to end.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey_core::auth::{Caller, ClientContext};
use latchkey_testkit::app::TestApp;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{assert_problem, jwt_parts, token_refresh};

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// Signs in and returns the access token.
pub(crate) async fn token(app: &TestApp, email: &str) -> String {
    let r = app.login(email, PASSWORD).await;
    assert_eq!(r.status(), 200, "login of {email}");
    let body: Value = r.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// A server with an administrator (`root@example.com`, by the operator
/// path the CLI uses) and a plain user (`ada@example.com`).
async fn app() -> (TestApp, Uuid, Uuid) {
    let app = TestApp::spawn().await;
    let root = app.create_user("root@example.com", PASSWORD, true).await;
    let ada = app.create_user("ada@example.com", PASSWORD, true).await;
    grant(&app, root, "admin").await;
    (app, root, ada)
}

pub(crate) async fn grant(app: &TestApp, id: Uuid, role: &str) {
    app.state
        .services
        .admin
        .grant(Caller::Operator, id, role, &ClientContext::default())
        .await
        .unwrap();
}

pub(crate) async fn call(
    app: &TestApp,
    method: Method,
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

/// `GET path` as `token`, its body as JSON.
pub(crate) async fn get_json(app: &TestApp, path: &str, token: &str) -> Value {
    call(app, Method::GET, path, token, None)
        .await
        .json()
        .await
        .unwrap()
}

/// Every admin route of this build, with a body it accepts.
fn routes(target: Uuid) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/v1/admin/users".into(), None),
        (
            Method::POST,
            "/v1/admin/users".into(),
            Some(json!({"email": "made@example.com", "password": "a long enough passphrase 9"})),
        ),
        (Method::GET, format!("/v1/admin/users/{target}"), None),
        (Method::DELETE, format!("/v1/admin/users/{target}"), None),
        (
            Method::PATCH,
            format!("/v1/admin/users/{target}"),
            Some(json!({"name": "Mallory"})),
        ),
        (
            Method::POST,
            format!("/v1/admin/users/{target}/disable"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/admin/users/{target}/enable"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/admin/users/{target}/unlock"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/admin/users/{target}/logout"),
            None,
        ),
        (
            Method::PUT,
            format!("/v1/admin/users/{target}/roles"),
            Some(json!({"roles": ["admin"]})),
        ),
        (Method::GET, "/v1/admin/roles".into(), None),
        (
            Method::POST,
            "/v1/admin/roles".into(),
            Some(json!({"name": "x", "permissions": []})),
        ),
        (Method::DELETE, "/v1/admin/roles/x".into(), None),
        (Method::GET, "/v1/admin/keys".into(), None),
        (Method::POST, "/v1/admin/keys/rotate".into(), None),
        (Method::GET, "/v1/admin/audit".into(), None),
        (Method::GET, "/v1/admin/webhooks".into(), None),
        (
            Method::POST,
            "/v1/admin/webhooks".into(),
            Some(json!({"url": "https://hooks.example.com/", "events": ["*"]})),
        ),
        (Method::DELETE, format!("/v1/admin/webhooks/{target}"), None),
        (
            Method::POST,
            format!("/v1/admin/webhooks/{target}/rotate-secret"),
            None,
        ),
        (Method::GET, "/v1/admin/events/dead-letters".into(), None),
        (
            Method::POST,
            format!("/v1/admin/events/dead-letters/{target}/retry"),
            None,
        ),
    ]
}

#[tokio::test]
async fn every_admin_route_refuses_a_caller_without_the_permission() {
    let (app, root, ada) = app().await;
    let plain = token(&app, "ada@example.com").await;
    for (method, path, body) in routes(root) {
        let r = call(&app, method.clone(), &path, &plain, body.clone()).await;
        let problem = assert_problem(r, 403, "forbidden").await;
        assert!(problem.get("items").is_none(), "{method} {path}: no data");
        let r = app
            .client
            .request(method.clone(), app.url(&path))
            .send()
            .await
            .unwrap();
        assert_problem(r, 401, "unauthorized").await;
    }
    // A role with only users:read reads, and nothing else.
    app.state
        .services
        .admin
        .create_role(
            Caller::Operator,
            "support",
            "",
            &["users:read".into()],
            &ClientContext::default(),
        )
        .await
        .unwrap();
    grant(&app, ada, "support").await;
    let r = call(&app, Method::GET, "/v1/admin/users", &plain, None).await;
    assert_eq!(r.status(), 200, "roles are read now, not from the token");
    let r = call(
        &app,
        Method::POST,
        &format!("/v1/admin/users/{root}/disable"),
        &plain,
        None,
    )
    .await;
    assert_problem(r, 403, "forbidden").await;
    // Nothing happened to root.
    let root_token = token(&app, "root@example.com").await;
    let me: Value = app
        .get_as("/v1/me", &root_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["roles"], json!(["admin"]));
}

#[tokio::test]
async fn a_forged_roles_claim_is_refused_and_a_revoked_role_stops_at_once() {
    let (app, _root, ada) = app().await;
    let plain = token(&app, "ada@example.com").await;
    // A token made by the client itself: roles ["admin"], signature kept.
    let (_, mut claims) = jwt_parts(&plain);
    claims["roles"] = json!(["admin"]);
    let parts: Vec<&str> = plain.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    let r = call(&app, Method::GET, "/v1/admin/users", &forged, None).await;
    assert_problem(r, 401, "unauthorized").await;

    // A genuine token issued while ada held admin keeps its claim, but the
    // admin API follows the store.
    grant(&app, ada, "admin").await;
    let admin_token = token(&app, "ada@example.com").await;
    let (_, claims) = jwt_parts(&admin_token);
    assert_eq!(claims["roles"], json!(["admin"]), "tokens carry the roles");
    let r = call(&app, Method::GET, "/v1/admin/users", &admin_token, None).await;
    assert_eq!(r.status(), 200);
    let root_token = token(&app, "root@example.com").await;
    let r = call(
        &app,
        Method::PUT,
        &format!("/v1/admin/users/{ada}/roles"),
        &root_token,
        Some(json!({"roles": []})),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["roles"], json!([]));
    let r = call(&app, Method::GET, "/v1/admin/users", &admin_token, None).await;
    assert_problem(r, 403, "forbidden").await;
    let me: Value = app
        .get_as("/v1/me", &admin_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        me["roles"],
        json!([]),
        "the profile shows the change at once"
    );
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one story: create, refuse, assign, delete, audit
async fn roles_are_validated_and_admin_stays() {
    let (app, root, ada) = app().await;
    let t = token(&app, "root@example.com").await;
    let create = |body: Value| call(&app, Method::POST, "/v1/admin/roles", &t, Some(body));
    for name in [
        "",
        "Admin",
        "1x",
        "a b",
        "a:b",
        "é",
        "a\u{0}",
        &"a".repeat(65),
    ] {
        let r = create(json!({"name": name, "permissions": []})).await;
        assert_problem(r, 400, "validation_failed").await;
    }
    let r = create(json!({"name": "ops", "permissions": ["users:read", "root:all"]})).await;
    let p = assert_problem(r, 400, "validation_failed").await;
    assert_eq!(p["errors"][0]["code"], "unknown_permission");
    let r = create(json!({"name": "ops", "permissions": ["users:read"], "extra": 1})).await;
    assert_problem(r, 400, "malformed_request").await;
    let r = create(json!({"name": "ops", "description": "x".repeat(501), "permissions": []})).await;
    assert_problem(r, 400, "validation_failed").await;

    let r = create(json!({"name": "ops", "description": "On call", "permissions": ["users:read", "keys:rotate"]})).await;
    assert_eq!(r.status(), 201);
    let role: Value = r.json().await.unwrap();
    assert_eq!(role["permissions"], json!(["users:read", "keys:rotate"]));
    assert_eq!(role["builtin"], false);
    let r = create(json!({"name": "ops", "permissions": []})).await;
    assert_problem(r, 409, "conflict").await;

    let list: Value = get_json(&app, "/v1/admin/roles", &t).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "ops"]);
    assert_eq!(list["items"][0]["builtin"], true);
    assert_eq!(list["items"][0]["permissions"].as_array().unwrap().len(), 9);

    // Unknown roles and bad names in an assignment.
    for roles in [json!(["nope"]), json!(["Bad Name"])] {
        let r = call(
            &app,
            Method::PUT,
            &format!("/v1/admin/users/{ada}/roles"),
            &t,
            Some(json!({ "roles": roles })),
        )
        .await;
        let p = assert_problem(r, 400, "validation_failed").await;
        assert_eq!(p["errors"][0]["code"], "unknown_role");
    }
    let r = call(
        &app,
        Method::PUT,
        &format!("/v1/admin/users/{ada}/roles"),
        &t,
        Some(json!({"roles": ["ops", "ops"]})),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["roles"], json!(["ops"]));

    // admin cannot be deleted; deleting ops takes it from ada.
    let r = call(&app, Method::DELETE, "/v1/admin/roles/admin", &t, None).await;
    assert_problem(r, 403, "forbidden").await;
    let r = call(&app, Method::DELETE, "/v1/admin/roles/nope", &t, None).await;
    assert_problem(r, 404, "not_found").await;
    let r = call(&app, Method::DELETE, "/v1/admin/roles/ops", &t, None).await;
    assert_eq!(r.status(), 204);
    let ada_now: Value = get_json(&app, &format!("/v1/admin/users/{ada}"), &t).await;
    assert_eq!(ada_now["roles"], json!([]));

    // Each change is a security event naming the administrator.
    let events = app.state.store.user_events(root, 20).await.unwrap();
    let created = events
        .iter()
        .find(|e| e.kind.as_str() == "role_created")
        .unwrap();
    assert_eq!(created.actor_id, Some(root));
    assert!(created.details.as_deref().unwrap().contains("\"ops\""));
    let changed = app.state.store.user_events(ada, 20).await.unwrap();
    let roles = changed
        .iter()
        .find(|e| e.kind.as_str() == "roles_changed")
        .unwrap();
    assert_eq!(roles.actor_id, Some(root));
    assert_eq!(
        roles.details.as_deref(),
        Some(r#"{"after":["ops"],"before":[]}"#)
    );
}

#[tokio::test]
async fn the_last_admin_cannot_drop_admin_nor_be_disabled() {
    let (app, root, ada) = app().await;
    let t = token(&app, "root@example.com").await;
    let r = call(
        &app,
        Method::PUT,
        &format!("/v1/admin/users/{root}/roles"),
        &t,
        Some(json!({"roles": []})),
    )
    .await;
    assert_problem(r, 409, "conflict").await;
    let r = call(
        &app,
        Method::POST,
        &format!("/v1/admin/users/{root}/disable"),
        &t,
        None,
    )
    .await;
    assert_problem(r, 409, "conflict").await;
    // With a second administrator, one may go.
    grant(&app, ada, "admin").await;
    let r = call(
        &app,
        Method::PUT,
        &format!("/v1/admin/users/{root}/roles"),
        &t,
        Some(json!({"roles": []})),
    )
    .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn two_admins_removing_each_other_at_once_leave_one() {
    let (app, root, ada) = app().await;
    grant(&app, ada, "admin").await;
    let ada_path = format!("/v1/admin/users/{ada}/roles");
    let root_path = format!("/v1/admin/users/{root}/roles");
    for _ in 0..5 {
        let (tr, ta) = (
            token(&app, "root@example.com").await,
            token(&app, "ada@example.com").await,
        );
        let (a, b) = tokio::join!(
            call(
                &app,
                Method::PUT,
                &ada_path,
                &tr,
                Some(json!({"roles": []}))
            ),
            call(
                &app,
                Method::PUT,
                &root_path,
                &ta,
                Some(json!({"roles": []}))
            ),
        );
        let statuses = [a.status().as_u16(), b.status().as_u16()];
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{statuses:?}"
        );
        assert!(statuses.iter().all(|s| [200, 403, 409].contains(s)));
        let mut admins = 0;
        for id in [root, ada] {
            if has_admin(&app, id).await {
                admins += 1;
            }
        }
        assert_eq!(admins, 1);
        // Both admins again for the next round.
        grant(&app, root, "admin").await;
        grant(&app, ada, "admin").await;
    }
}

async fn has_admin(app: &TestApp, id: Uuid) -> bool {
    app.state
        .store
        .user_by_id(id)
        .await
        .unwrap()
        .unwrap()
        .roles
        .contains(&"admin".to_owned())
}

#[tokio::test]
async fn users_page_by_cursor_and_tampering_is_refused() {
    let (app, root, ada) = app().await;
    let t = token(&app, "root@example.com").await;
    let mut ids = vec![root, ada];
    for i in 0..5 {
        ids.push(
            app.create_user(&format!("u{i}@example.com"), PASSWORD, true)
                .await,
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/v1/admin/users?limit=3".to_owned(),
            Some(c) => format!("/v1/admin/users?limit=3&cursor={c}"),
        };
        let page: Value = get_json(&app, &path, &t).await;
        for u in page["items"].as_array().unwrap() {
            seen.push(u["id"].as_str().unwrap().parse::<Uuid>().unwrap());
            assert!(u.get("password_hash").is_none());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids, "every account once, oldest first");

    let page: Value = get_json(&app, "/v1/admin/users?limit=3", &t).await;
    let good = page["next_cursor"].as_str().unwrap().to_owned();
    let mut bad = good.clone().into_bytes();
    bad[5] = if bad[5] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    for path in [
        format!("/v1/admin/users?cursor={bad}"),
        format!("/v1/admin/users?cursor={}", &good[..good.len() - 2]),
        format!("/v1/admin/users?cursor={good}&query=ada"),
        "/v1/admin/users?cursor=AAAA".to_owned(),
        format!("/v1/admin/users?cursor={}", "A".repeat(2000)),
        "/v1/admin/users?limit=0".to_owned(),
        "/v1/admin/users?limit=10000".to_owned(),
        "/v1/admin/users?limit=-1".to_owned(),
        "/v1/admin/users?limit=x".to_owned(),
        "/v1/admin/users?page=2".to_owned(),
        format!("/v1/admin/users?query={}", "a".repeat(321)),
        "/v1/admin/users?query=%01".to_owned(),
    ] {
        let r = call(&app, Method::GET, &path, &t, None).await;
        assert_problem(r, 400, "malformed_request").await;
    }

    // Search: an exact email in any case, an id, a name prefix.
    let found = |q: &str| {
        let path = format!("/v1/admin/users?query={q}");
        let t = t.clone();
        let app = &app;
        async move {
            let page: Value = get_json(app, &path, &t).await;
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["email"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(found("ADA%40Example.com").await, ["ada@example.com"]);
    assert_eq!(found(&ada.to_string()).await, ["ada@example.com"]);
    assert!(found("nobody%40example.com").await.is_empty());
    app.state
        .services
        .accounts
        .update_name(ada, Some("Ada Lovelace"))
        .await
        .unwrap();
    assert_eq!(found("Ada%20L").await, ["ada@example.com"]);
    assert!(found("ada%20l").await.is_empty(), "case-sensitive");
    assert!(found("%25").await.is_empty(), "no wildcard");
}

#[tokio::test]
async fn a_disabled_account_loses_its_sessions_and_signs_in_only_to_hear_forbidden() {
    let (app, root, ada) = app().await;
    let t = token(&app, "root@example.com").await;
    let login: Value = app
        .login("ada@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let access = login["access_token"].as_str().unwrap();
    let refresh = login["refresh_token"].as_str().unwrap();
    assert_eq!(app.get_as("/v1/me", access).await.status(), 200);

    let r = call(
        &app,
        Method::POST,
        &format!("/v1/admin/users/{ada}/disable"),
        &t,
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["disabled"], true);
    assert!(body["disabled_at"].is_string());
    assert_eq!(body["session_count"], 0);

    assert_problem(app.get_as("/v1/me", access).await, 401, "unauthorized").await;
    assert_problem(token_refresh(&app, refresh).await, 401, "invalid_token").await;
    assert_problem(
        app.login("ada@example.com", "wrong password entirely")
            .await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_problem(
        app.login("ada@example.com", PASSWORD).await,
        403,
        "forbidden",
    )
    .await;

    let r = call(
        &app,
        Method::POST,
        &format!("/v1/admin/users/{ada}/enable"),
        &t,
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["disabled"], false);
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);

    let events = app.state.store.user_events(ada, 20).await.unwrap();
    for kind in ["account_disabled", "account_enabled"] {
        let e = events.iter().find(|e| e.kind.as_str() == kind).unwrap();
        assert_eq!(e.actor_id, Some(root), "{kind}");
    }
    // Unknown and malformed ids.
    for id in [Uuid::now_v7().to_string(), "not-a-uuid".to_owned()] {
        let r = call(
            &app,
            Method::POST,
            &format!("/v1/admin/users/{id}/disable"),
            &t,
            None,
        )
        .await;
        assert_problem(r, 404, "not_found").await;
    }
}

#[tokio::test]
async fn unlock_and_logout_act_on_the_account() {
    let app = TestApp::builder()
        .configure(|c| c.lockout.threshold = 3)
        .spawn()
        .await;
    let root = app.create_user("root@example.com", PASSWORD, true).await;
    let ada = app.create_user("ada@example.com", PASSWORD, true).await;
    grant(&app, root, "admin").await;
    let t = token(&app, "root@example.com").await;
    let _ada_token = token(&app, "ada@example.com").await;
    for _ in 0..3 {
        app.login("ada@example.com", "wrong password entirely")
            .await;
    }
    app.settled().await;
    assert_problem(
        app.login("ada@example.com", PASSWORD).await,
        423,
        "account_locked",
    )
    .await;
    let seen: Value = get_json(&app, &format!("/v1/admin/users/{ada}"), &t).await;
    assert!(seen["locked_until"].is_string(), "{seen}");
    assert_eq!(seen["session_count"], 1);
    // The listing reads every lock of the page at once, each on its account.
    let listed: Value = get_json(&app, "/v1/admin/users", &t).await;
    let items = listed["items"].as_array().unwrap();
    for item in items {
        let locked = item["email"] == "ada@example.com";
        assert_eq!(item["locked_until"].is_string(), locked, "{item}");
    }
    assert_eq!(
        items
            .iter()
            .filter(|i| i["locked_until"].is_string())
            .count(),
        1
    );
    let r = call(
        &app,
        Method::POST,
        &format!("/v1/admin/users/{ada}/unlock"),
        &t,
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);

    let r = call(
        &app,
        Method::POST,
        &format!("/v1/admin/users/{ada}/logout"),
        &t,
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
    let seen: Value = get_json(&app, &format!("/v1/admin/users/{ada}"), &t).await;
    assert_eq!(seen["session_count"], 0);
    assert!(seen["locked_until"].is_null());
}

#[tokio::test]
async fn signing_keys_are_listed_and_a_rotation_is_published_ahead_of_use() {
    let (app, root, _) = app().await;
    let t = token(&app, "root@example.com").await;
    let (header, _) = jwt_parts(&t);
    let listed: Value = get_json(&app, "/v1/admin/keys", &t).await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["kid"], header["kid"]);
    assert_eq!(items[0]["state"], "active");
    assert_eq!(items[0]["expires_at"], Value::Null);
    assert!(
        items[0].get("d").is_none() && !listed.to_string().contains("sealed"),
        "no private part"
    );

    let r = call(&app, Method::POST, "/v1/admin/keys/rotate", &t, None).await;
    assert_eq!(r.status(), 201);
    let new: Value = r.json().await.unwrap();
    assert_eq!(new["state"], "published", "{new}");
    assert_ne!(new["kid"], header["kid"]);
    let created = time::OffsetDateTime::parse(
        new["created_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let activates = time::OffsetDateTime::parse(
        new["activates_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let ahead = u64::try_from((activates - created).whole_seconds()).unwrap();
    assert_eq!(ahead, app.state.config.keys.publish_ahead_seconds);

    // Published at once (this node re-reads the storage), signing still with
    // the old key.
    app.key_watch_pass().await;
    let jwks: Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&Value> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["kid"])
        .collect();
    assert!(kids.contains(&&new["kid"]) && kids.contains(&&header["kid"]));
    let again = token(&app, "root@example.com").await;
    assert_eq!(jwt_parts(&again).0["kid"], header["kid"]);
    let listed: Value = get_json(&app, "/v1/admin/keys", &again).await;
    let states: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["active", "published"]);

    // Recorded on the administrator's account, without key material.
    let events = app.state.store.user_events(root, 20).await.unwrap();
    let rotated = events
        .iter()
        .find(|e| e.kind.as_str() == "signing_key_rotated")
        .unwrap();
    assert_eq!(rotated.actor_id, Some(root));
    let details = rotated.details.as_deref().unwrap();
    assert!(details.contains(new["kid"].as_str().unwrap()), "{details}");
}

#[tokio::test]
async fn deleting_an_account_ends_it_everywhere_and_spares_the_last_admin() {
    let (app, root, ada) = app().await;
    let t = token(&app, "root@example.com").await;
    let ada_token = token(&app, "ada@example.com").await;
    let me = |token: String| {
        let app = &app;
        async move {
            app.client
                .get(app.url("/v1/me"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(me(ada_token.clone()).await.status(), 200);

    // Hostile ids, an unknown account, and the caller's own account.
    let r = call(&app, Method::DELETE, "/v1/admin/users/not-a-uuid", &t, None).await;
    assert!(r.status() == 404 || r.status() == 400, "{}", r.status());
    let path = format!("/v1/admin/users/{}", Uuid::now_v7());
    assert_problem(
        call(&app, Method::DELETE, &path, &t, None).await,
        404,
        "not_found",
    )
    .await;
    let own = format!("/v1/admin/users/{root}");
    assert_problem(
        call(&app, Method::DELETE, &own, &t, None).await,
        409,
        "conflict",
    )
    .await;

    // A user with users:write only cannot delete the last admin.
    app.state
        .services
        .admin
        .create_role(
            Caller::Operator,
            "ops",
            "",
            &["users:write".to_owned()],
            &ClientContext::default(),
        )
        .await
        .unwrap();
    grant(&app, ada, "ops").await;
    let r = call(&app, Method::DELETE, &own, &ada_token, None).await;
    assert_problem(r, 409, "conflict").await;
    assert!(has_admin(&app, root).await);

    let path = format!("/v1/admin/users/{ada}");
    let r = call(&app, Method::DELETE, &path, &t, None).await;
    assert_eq!(r.status(), 202);
    assert_problem(
        call(&app, Method::GET, &path, &t, None).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(me(ada_token).await, 401, "unauthorized").await;
    assert_problem(
        app.login("ada@example.com", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    assert!(app
        .state
        .store
        .user_events(ada, 20)
        .await
        .unwrap()
        .is_empty());
    let events = app.state.store.user_events(root, 20).await.unwrap();
    let deleted = events
        .iter()
        .find(|e| e.kind.as_str() == "account_deleted")
        .unwrap();
    assert_eq!(deleted.actor_id, Some(root));
    assert_eq!(
        deleted.details.as_deref(),
        Some(format!(r#"{{"user_id":"{ada}"}}"#).as_str())
    );
    // Deleting again: gone.
    assert_problem(
        call(&app, Method::DELETE, &path, &t, None).await,
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn an_administrator_creates_accounts_with_a_password_under_the_sign_up_rules() {
    let (app, root, _) = app().await;
    let t = token(&app, "root@example.com").await;

    // With a password: signs in at once; the address verified as asked.
    let r = create_account(&app, &t, json!({"email": "Grace@Example.com", "name": "Grace", "password": PASSWORD, "email_verified": true}))
    .await;
    assert_eq!(r.status(), 201);
    let grace: Value = r.json().await.unwrap();
    assert_eq!(grace["email"], "Grace@Example.com");
    assert_eq!(grace["email_verified"], true);
    assert_eq!(grace["roles"], json!([]));
    assert_eq!(grace["disabled"], false);
    assert_eq!(app.login("grace@example.com", PASSWORD).await.status(), 200);
    let id: Uuid = grace["id"].as_str().unwrap().parse().unwrap();
    let events = app.state.store.user_events(id, 20).await.unwrap();
    let created = events
        .iter()
        .find(|e| e.kind.as_str() == "account_created")
        .unwrap();
    assert_eq!(created.actor_id, Some(root));
    assert!(!created.details.as_deref().unwrap().contains(PASSWORD));
    // An account made holding `admin` is every power granted: an alert.
    let r = create_account(
        &app,
        &t,
        json!({"email": "hopper@example.com", "password": PASSWORD, "roles": ["admin"]}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let hopper: Uuid = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let events = app.state.store.user_events(hopper, 20).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["admin_role_granted"]);
    assert!(events[0]
        .details
        .as_deref()
        .unwrap()
        .contains("\"roles\":[\"admin\"]"));

    // Hostile and refused inputs create nothing.
    let refused = [
        (
            json!({"email": "GRACE@example.com", "password": PASSWORD}),
            409,
            "conflict",
        ),
        (
            json!({"email": "weak@example.com", "password": "password"}),
            400,
            "validation_failed",
        ),
        (json!({"email": "not-an-address"}), 400, "validation_failed"),
        (
            json!({"email": "nul@example.com", "name": "a\u{0}b"}),
            400,
            "validation_failed",
        ),
        (
            json!({"email": "role@example.com", "roles": ["nope"]}),
            400,
            "validation_failed",
        ),
        (
            json!({"email": "role@example.com", "roles": ["Bad Name"]}),
            400,
            "validation_failed",
        ),
        (
            json!({"email": "x@example.com", "is_admin": true}),
            400,
            "malformed_request",
        ),
    ];
    for (body, status, code) in refused {
        assert_problem(create_account(&app, &t, body.clone()).await, status, code).await;
    }
    for email in [
        "weak@example.com",
        "nul@example.com",
        "role@example.com",
        "x@example.com",
    ] {
        let page: Value = get_json(&app, &format!("/v1/admin/users?query={email}"), &t).await;
        assert_eq!(page["items"], json!([]), "{email}");
    }
}

/// `POST /v1/admin/users` as `token`.
async fn create_account(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    call(app, Method::POST, "/v1/admin/users", token, Some(body)).await
}

#[tokio::test]
async fn an_invite_sets_the_first_password_and_roles_need_their_permission() {
    let (app, _, ada) = app().await;
    let t = token(&app, "root@example.com").await;
    // users:write alone creates accounts, but not with roles.
    app.state
        .services
        .admin
        .create_role(
            Caller::Operator,
            "ops",
            "",
            &["users:write".to_owned()],
            &ClientContext::default(),
        )
        .await
        .unwrap();
    grant(&app, ada, "ops").await;
    let ops = token(&app, "ada@example.com").await;
    let r = create_account(
        &app,
        &ops,
        json!({"email": "sly@example.com", "roles": ["admin"]}),
    )
    .await;
    assert_problem(r, 403, "forbidden").await;
    let r = create_account(
        &app,
        &ops,
        json!({"email": "plain@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), 201);

    // Without a password: an invite whose link sets the first one; until
    // then no password signs in.
    let r = create_account(
        &app,
        &t,
        json!({"email": "inv@example.com", "name": "Invited", "roles": ["admin"]}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let invited: Value = r.json().await.unwrap();
    assert_eq!(invited["roles"], json!(["admin"]));
    assert_eq!(invited["email_verified"], false);
    let mail = app.wait_for_mails("inv@example.com", 1).await.remove(0);
    assert!(mail.contains("Subject: Your latchkey account"), "{mail}");
    assert!(mail.contains("72 hours"), "{mail}");
    assert!(!mail.contains(PASSWORD));
    let link = latchkey_testkit::app::link_token(&mail);
    assert!(link.starts_with("lk_pr_"), "{link}");
    assert_problem(
        app.login("inv@example.com", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    let r = app
        .client
        .post(app.url("/v1/password/reset"))
        .json(&json!({"token": link, "new_password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(app.login("inv@example.com", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn two_creations_of_one_address_at_once_make_one_account() {
    let (app, _, _) = app().await;
    let t = token(&app, "root@example.com").await;
    let body = json!({"email": "twin@example.com", "password": PASSWORD});
    let (a, b) = tokio::join!(
        call(
            &app,
            Method::POST,
            "/v1/admin/users",
            &t,
            Some(body.clone())
        ),
        call(&app, Method::POST, "/v1/admin/users", &t, Some(body)),
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409]);
}

#[tokio::test]
async fn an_administrator_changes_an_address_without_confirmation_and_the_old_one_is_told() {
    let (app, root, ada) = app().await;
    let t = token(&app, "root@example.com").await;
    let ada_path = format!("/v1/admin/users/{ada}");
    let patch = |body: Value| {
        let (app, t, ada_path) = (&app, &t, &ada_path);
        async move { call(app, Method::PATCH, ada_path, t, Some(body)).await }
    };
    // A pending reset link of the old address.
    let r = app
        .client
        .post(app.url("/v1/password/forgot"))
        .json(&json!({"email": "ada@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let reset = app.wait_for_mails("ada@example.com", 1).await.remove(0);
    let reset = latchkey_testkit::app::link_token(&reset);

    // Hostile inputs change nothing.
    let refused = [
        (json!({"email": "root@EXAMPLE.com"}), 409, "conflict"),
        (json!({"email": "not an address"}), 400, "validation_failed"),
        (json!({"name": "x".repeat(101)}), 400, "validation_failed"),
        (json!({"name": "a\u{202e}b"}), 400, "validation_failed"),
        (json!({"password_hash": "x"}), 400, "malformed_request"),
    ];
    for (body, status, code) in refused {
        assert_problem(patch(body).await, status, code).await;
    }
    let unknown = format!("/v1/admin/users/{}", Uuid::now_v7());
    let r = call(
        &app,
        Method::PATCH,
        &unknown,
        &t,
        Some(json!({"name": "X"})),
    )
    .await;
    assert_problem(r, 404, "not_found").await;

    let r = patch(json!({"email": "Ada.Lovelace@example.com", "name": "Ada L"})).await;
    assert_eq!(r.status(), 200);
    let changed: Value = r.json().await.unwrap();
    assert_eq!(changed["email"], "Ada.Lovelace@example.com");
    assert_eq!(changed["name"], "Ada L");
    assert_eq!(changed["email_verified"], true);
    // The new address signs in at once; the old one is no account now.
    assert_eq!(
        app.login("ada.lovelace@example.com", PASSWORD)
            .await
            .status(),
        200
    );
    assert_problem(
        app.login("ada@example.com", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    // The old address is told, and its reset link died with the change.
    let mails = app.wait_for_mails("ada@example.com", 2).await;
    assert!(
        mails[1].contains("Ada.Lovelace@example.com"),
        "{}",
        mails[1]
    );
    let r = app
        .client
        .post(app.url("/v1/password/reset"))
        .json(&json!({"token": reset, "new_password": "a fresh passphrase 123"}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "invalid_token").await;
    // Verified state and name on their own; an empty name clears it.
    let r = patch(json!({"email_verified": false, "name": ""})).await;
    let changed: Value = r.json().await.unwrap();
    assert_eq!(changed["email_verified"], false);
    assert_eq!(changed["name"], Value::Null);
    let events = app.state.store.user_events(ada, 20).await.unwrap();
    let recorded: Vec<_> = events
        .iter()
        .filter(|e| e.kind.as_str() == "account_changed")
        .collect();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].actor_id, Some(root));
    assert!(!recorded
        .iter()
        .any(|e| e.details.as_deref().unwrap().contains("Lovelace")));
}

#[tokio::test]
async fn an_invite_link_works_within_72_hours_and_not_after() {
    let clock =
        latchkey_core::clock::ManualClock::new(time::macros::datetime!(2026-11-23 10:00:00 UTC));
    let app = TestApp::builder()
        .clock(std::sync::Arc::new(clock.clone()))
        .spawn()
        .await;
    let root = app.create_user("root@example.com", PASSWORD, true).await;
    grant(&app, root, "admin").await;
    let t = token(&app, "root@example.com").await;
    let mut links = Vec::new();
    for (n, email) in ["late@example.com", "timely@example.com"]
        .iter()
        .enumerate()
    {
        let r = create_account(&app, &t, json!({ "email": email })).await;
        assert_eq!(r.status(), 201);
        let mail = app.wait_for_mails(email, 1).await.remove(0);
        links.push(latchkey_testkit::app::link_token(&mail));
        assert_eq!(links.len(), n + 1);
    }
    let reset = |link: String| {
        let app = &app;
        async move {
            app.client
                .post(app.url("/v1/password/reset"))
                .json(&json!({"token": link, "new_password": PASSWORD}))
                .send()
                .await
                .unwrap()
        }
    };
    // One second before the 72 hours are over the link still works...
    clock.advance(time::Duration::hours(72) - time::Duration::seconds(1));
    assert_eq!(reset(links[1].clone()).await.status(), 204);
    assert_eq!(
        app.login("timely@example.com", PASSWORD).await.status(),
        200
    );
    // ...and two seconds later it is refused, and no password signs in.
    clock.advance(time::Duration::seconds(2));
    assert_problem(reset(links[0].clone()).await, 401, "invalid_token").await;
    assert_problem(
        app.login("late@example.com", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
}

#[tokio::test]
async fn two_changes_to_one_new_address_at_once_give_it_to_one_account() {
    let (app, _, ada) = app().await;
    let t = token(&app, "root@example.com").await;
    let bob = app.create_user("bob@example.com", PASSWORD, true).await;
    let body = json!({"email": "wanted@example.com"});
    let (to_ada, to_bob) = (
        format!("/v1/admin/users/{ada}"),
        format!("/v1/admin/users/{bob}"),
    );
    let (a, b) = tokio::join!(
        call(&app, Method::PATCH, &to_ada, &t, Some(body.clone())),
        call(&app, Method::PATCH, &to_bob, &t, Some(body)),
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409]);
    let mut owners = 0;
    for id in [ada, bob] {
        let user = app.state.store.user_by_id(id).await.unwrap().unwrap();
        owners += usize::from(user.email == "wanted@example.com");
    }
    assert_eq!(owners, 1, "exactly one account has the address");
}

#[tokio::test]
async fn sign_ins_in_flight_while_an_account_is_disabled_leave_no_live_session() {
    let app = std::sync::Arc::new(
        TestApp::builder()
            .configure(|c| c.rate_limit.enabled = false)
            .spawn()
            .await,
    );
    let root = app.create_user("root@example.com", PASSWORD, true).await;
    grant(&app, root, "admin").await;
    let ada = app.create_user("ada@example.com", PASSWORD, true).await;
    let t = token(&app, "root@example.com").await;
    // As many at once as the lockout threshold admits in flight (5).
    let logins: Vec<_> = (0..5)
        .map(|_| {
            let app = std::sync::Arc::clone(&app);
            tokio::spawn(async move {
                let r = app.login("ada@example.com", PASSWORD).await;
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap_or(Value::Null);
                (status, body)
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let r = call(
        &app,
        Method::POST,
        &format!("/v1/admin/users/{ada}/disable"),
        &t,
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    for login in logins {
        let (status, body) = login.await.unwrap();
        // 200: done before the disable (and revoked by it); 403: started
        // after it; 401: raced it (the moved security stamp refused the
        // session), answered as at a password change during sign-in.
        assert!(
            status == 200
                || status == 403
                || (status == 401 && body["code"] == "invalid_credentials"),
            "{status} {body}"
        );
        if status == 200 {
            // Issued before the disable took effect: revoked with the rest.
            let me = app
                .client
                .get(app.url("/v1/me"))
                .bearer_auth(body["access_token"].as_str().unwrap())
                .send()
                .await
                .unwrap();
            assert_eq!(me.status(), 401, "an access token outlived the disable");
            let refreshed = token_refresh(&app, body["refresh_token"].as_str().unwrap()).await;
            assert_eq!(refreshed.status(), 401, "a session outlived the disable");
        }
    }
    let seen: Value = get_json(&app, &format!("/v1/admin/users/{ada}"), &t).await;
    assert_eq!(seen["session_count"], 0, "{seen}");
    assert_eq!(seen["disabled"], true, "{seen}");
}
