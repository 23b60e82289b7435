//! The security events' hash chain on a real server and store: one line of
//! places under concurrent writers, every tampering under the store named
//! at its event, and deleted accounts redacted without breaking it.

use std::sync::Arc;

use latchkey_core::audit::chain::Break;
use latchkey_core::audit::verify::{verify, Broken, Report};
use latchkey_core::auth::{Caller, ClientContext};
use latchkey_testkit::app::TestApp;
use uuid::Uuid;

use crate::support::Db;

const PASSWORD: &str = "correct horse battery staple";

async fn report(app: &TestApp) -> Report {
    verify(&*app.state.store, None).await.unwrap()
}

/// The id of the event at `seq`.
async fn event_at(db: &mut Db, seq: i64) -> Uuid {
    let sql = format!("SELECT id FROM security_events WHERE seq = {seq}");
    match db {
        Db::Postgres(c) => sqlx::query_scalar(&sql).fetch_one(c).await.unwrap(),
        Db::Sqlite(c) => sqlx::query_scalar(&sql).fetch_one(c).await.unwrap(),
    }
}

/// A server whose chain holds events from concurrent sign-ins.
async fn busy_app() -> (Arc<TestApp>, i64) {
    let app = Arc::new(
        TestApp::builder()
            .configure(|c| c.rate_limit.enabled = false)
            .spawn()
            .await,
    );
    let emails: Vec<String> = (0..4).map(|i| format!("user{i}@example.com")).collect();
    for email in &emails {
        app.create_user(email, PASSWORD, true).await;
    }
    let writers: Vec<_> = emails
        .iter()
        .flat_map(|email| [email.clone(), email.clone()])
        .map(|email| {
            let app = Arc::clone(&app);
            tokio::spawn(async move {
                for password in [PASSWORD, "wrong password", PASSWORD] {
                    let _ = app.login(&email, password).await;
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    app.settled().await;
    let mut db = Db::of(&app).await;
    let events = db.count("SELECT COUNT(*) FROM security_events").await;
    (app, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_written_at_once_form_one_chain_that_verifies() {
    let (app, events) = busy_app().await;
    assert!(
        events >= 16,
        "sign-ins and failures were recorded: {events}"
    );
    let r = report(&app).await;
    assert!(r.intact(), "{r:?}");
    assert_eq!(i64::try_from(r.checked).unwrap(), events);
    let mut db = Db::of(&app).await;
    assert_eq!(
        db.count("SELECT MAX(seq) FROM security_events").await,
        events,
        "places 1..n, no gap"
    );
    assert_eq!(db.count("SELECT seq FROM audit_chain").await, events);
}

#[derive(Debug, Clone, Copy)]
enum Tamper {
    Edit,
    Swap,
    Delete,
    DeleteLast,
    Outside,
}

/// Applies `tamper` to the chain of `events` events under the store, and
/// says what the verifier must report.
async fn tamper_with(db: &mut Db, tamper: Tamper, events: i64) -> Option<Broken> {
    match tamper {
        Tamper::Edit => {
            let id = event_at(db, 2).await;
            db.execute("UPDATE security_events SET ip = '203.0.113.99' WHERE seq = 2")
                .await;
            Some(Broken {
                seq: 2,
                id: Some(id),
                problem: Break::Content,
            })
        }
        Tamper::Swap => {
            let fifth = event_at(db, 5).await;
            for sql in [
                "UPDATE security_events SET seq = -1 WHERE seq = 4",
                "UPDATE security_events SET seq = 4 WHERE seq = 5",
                "UPDATE security_events SET seq = 5 WHERE seq = -1",
            ] {
                db.execute(sql).await;
            }
            Some(Broken {
                seq: 4,
                id: Some(fifth),
                problem: Break::Content,
            })
        }
        Tamper::Delete => {
            let seventh = event_at(db, 7).await;
            db.execute("DELETE FROM security_events WHERE seq = 6")
                .await;
            Some(Broken {
                seq: 7,
                id: Some(seventh),
                problem: Break::Gap { expected: 6 },
            })
        }
        Tamper::DeleteLast => {
            let before_last = event_at(db, events - 1).await;
            db.execute(&format!("DELETE FROM security_events WHERE seq = {events}"))
                .await;
            Some(Broken {
                seq: events - 1,
                id: Some(before_last),
                problem: Break::Head,
            })
        }
        Tamper::Outside => {
            let sql = match db {
                Db::Postgres(_) => {
                    "INSERT INTO security_events (id, kind, created_at) \
                     VALUES ('00000000-0000-7000-8000-000000000001', 'login_failed', now())"
                }
                Db::Sqlite(_) => {
                    "INSERT INTO security_events (id, kind, created_at) \
                     VALUES (x'00000000000070008000000000000001', 'login_failed', 0)"
                }
            };
            db.execute(sql).await;
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tampering_under_the_store_is_named_at_its_event() {
    for tamper in [
        Tamper::Edit,
        Tamper::Swap,
        Tamper::Delete,
        Tamper::DeleteLast,
        Tamper::Outside,
    ] {
        let (app, events) = busy_app().await;
        let mut db = Db::of(&app).await;
        assert!(report(&app).await.intact(), "{tamper:?}: whole before");
        let expected = tamper_with(&mut db, tamper, events).await;
        let r = report(&app).await;
        assert!(!r.intact(), "{tamper:?}: {r:?}");
        assert_eq!(r.broken, expected, "{tamper:?}");
        // The walk verified every event before the one it names.
        let verified_before = match expected {
            Some(Broken {
                problem: Break::Head,
                ..
            }) => events - 1,
            Some(Broken {
                problem: Break::Gap { expected },
                ..
            }) => expected - 1,
            Some(broken) => broken.seq - 1,
            None => events,
        };
        assert_eq!(
            i64::try_from(r.checked).unwrap(),
            verified_before,
            "{tamper:?}"
        );
        assert_eq!(r.unchained, u64::from(expected.is_none()), "{tamper:?}");
    }
}

#[tokio::test]
async fn a_deleted_account_is_redacted_and_the_chain_still_verifies() {
    let app = TestApp::spawn().await;
    let ada = app.create_user("ada@example.com", PASSWORD, true).await;
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
    assert_eq!(app.login("ada@example.com", "wrong").await.status(), 401);
    app.settled().await;
    app.state
        .services
        .admin
        .delete(Caller::Operator, ada, &ClientContext::default())
        .await
        .unwrap();
    let r = report(&app).await;
    assert!(r.intact(), "{r:?}");
    assert!(r.redacted >= 2, "{r:?}");
    let mut db = Db::of(&app).await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM security_events WHERE redacted")
            .await,
        i64::try_from(r.redacted).unwrap()
    );
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM security_events WHERE redacted AND (user_id IS NOT NULL \
             OR ip IS NOT NULL OR user_agent IS NOT NULL OR session_id IS NOT NULL \
             OR details IS NOT NULL)"
        )
        .await,
        0,
        "nothing personal left in a redacted event"
    );
}

/// Events stored before the chain existed are chained, in time order, when
/// the store is next migrated; once the chain has events, a row outside it
/// stays outside (reported, never adopted).
#[tokio::test]
async fn events_from_before_the_chain_are_chained_once_at_migration() {
    let (app, events) = busy_app().await;
    let mut db = Db::of(&app).await;
    db.execute("UPDATE security_events SET seq = NULL, content_hash = NULL, hash = NULL")
        .await;
    let zeros = match db {
        Db::Postgres(_) => "decode(repeat('00', 32), 'hex')",
        Db::Sqlite(_) => "zeroblob(32)",
    };
    db.execute(&format!("UPDATE audit_chain SET seq = 0, hash = {zeros}"))
        .await;
    assert_eq!(report(&app).await.unchained, u64::try_from(events).unwrap());
    app.state.store.migrate().await.unwrap();
    let r = report(&app).await;
    assert!(r.intact(), "{r:?}");
    assert_eq!(i64::try_from(r.checked).unwrap(), events);
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM security_events a JOIN security_events b ON b.seq = a.seq + 1 \
             WHERE b.created_at < a.created_at"
        )
        .await,
        0,
        "in time order"
    );

    tamper_with(&mut db, Tamper::Outside, events).await;
    app.state.store.migrate().await.unwrap();
    assert_eq!(report(&app).await.unchained, 1, "not adopted");
}

/// `cursor` with its last character changed (to another one, always).
fn altered(cursor: &str) -> String {
    let (head, last) = cursor.split_at(cursor.len() - 1);
    format!("{head}{}", if last == "A" { "B" } else { "A" })
}

/// `GET path` as `token`: the status and the body.
async fn get(app: &TestApp, path: &str, token: &str) -> (u16, serde_json::Value) {
    let r = app.get_as(path, token).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn access_token(app: &TestApp, email: &str, user_agent: &str) -> String {
    let r = app
        .client
        .post(app.url("/v1/login"))
        .header("user-agent", user_agent)
        .json(&serde_json::json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one story: a user's own events, pages, filters, refusals
async fn a_user_reads_their_own_events_newest_first_in_pages() {
    let app = TestApp::builder()
        .configure(|c| c.rate_limit.enabled = false)
        .spawn()
        .await;
    app.create_user("ada@example.com", PASSWORD, true).await;
    app.create_user("bob@example.com", PASSWORD, true).await;
    assert_eq!(app.login("ada@example.com", "wrong").await.status(), 401);
    app.settled().await;
    let bob = access_token(&app, "bob@example.com", "BobAgent/1").await;
    let ada = access_token(&app, "ada@example.com", "AdaAgent/2").await;
    app.settled().await;

    let (status, page) = get(&app, "/v1/me/events", &ada).await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    let types: Vec<&str> = items.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["login_succeeded", "login_failed"],
        "newest first, only ada's"
    );
    let newest = &items[0];
    assert_eq!(newest["category"], "authentication");
    assert_eq!(newest["severity"], "info");
    assert_eq!(newest["user_agent"], "AdaAgent/2");
    assert_eq!(items[1]["severity"], "notice");
    assert!(newest["session_id"].is_string() && newest["details"].is_object());
    assert!(newest["occurred_at"].as_str().unwrap().ends_with('Z'));
    assert!(page["next_cursor"].is_null());

    // Pages of one, and the type filter.
    let (_, first) = get(&app, "/v1/me/events?limit=1", &ada).await;
    assert_eq!(first["items"][0]["type"], "login_succeeded");
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (status, second) = get(
        &app,
        &format!("/v1/me/events?limit=1&cursor={cursor}"),
        &ada,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(second["items"][0]["type"], "login_failed");
    assert!(second["next_cursor"].is_null());
    let (_, failed) = get(&app, "/v1/me/events?type=login_failed", &ada).await;
    assert_eq!(failed["items"].as_array().unwrap().len(), 1);

    // A cursor is ada's, for that filter: bob, another filter or a changed
    // cursor get 400, never someone else's page.
    for (path, token) in [
        (format!("/v1/me/events?limit=1&cursor={cursor}"), &bob),
        (
            format!("/v1/me/events?limit=1&type=login_failed&cursor={cursor}"),
            &ada,
        ),
        (format!("/v1/me/events?cursor={}", altered(&cursor)), &ada),
        ("/v1/me/events?type=nope".to_owned(), &ada),
        ("/v1/me/events?limit=0".to_owned(), &ada),
        ("/v1/me/events?limit=201".to_owned(), &ada),
        ("/v1/me/events?user_id=x".to_owned(), &ada),
        (format!("/v1/me/events?type={}", "a".repeat(65)), &ada),
    ] {
        let (status, body) = get(&app, &path, token).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["code"], "malformed_request", "{path}");
    }
    let (_, bobs) = get(&app, "/v1/me/events", &bob).await;
    let bob_types: Vec<&str> = bobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(bob_types, ["login_succeeded"]);
    assert_eq!(bobs["items"][0]["user_agent"], "BobAgent/1");
    let r = app.get("/v1/me/events").await;
    assert_eq!(r.status(), 401);
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one story: the audit trail's filters and refusals
async fn the_audit_trail_filters_every_accounts_events_for_audit_read() {
    let app = TestApp::builder()
        .configure(|c| c.rate_limit.enabled = false)
        .spawn()
        .await;
    let root = app.create_user("root@example.com", PASSWORD, true).await;
    let ada = app.create_user("ada@example.com", PASSWORD, true).await;
    let gone = app.create_user("gone@example.com", PASSWORD, true).await;
    let operator = (Caller::Operator, ClientContext::default());
    let admin = &app.state.services.admin;
    admin
        .grant(operator.0, root, "admin", &operator.1)
        .await
        .unwrap();
    assert_eq!(app.login("ada@example.com", "wrong").await.status(), 401);
    assert_eq!(app.login("gone@example.com", PASSWORD).await.status(), 200);
    app.settled().await;
    admin.delete(operator.0, gone, &operator.1).await.unwrap();
    let started = app.state.clock.now();
    let t = access_token(&app, "root@example.com", "RootAgent/1").await;
    app.settled().await;
    let plain = access_token(&app, "ada@example.com", "AdaAgent/1").await;

    let types = |page: &serde_json::Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, all) = get(&app, "/v1/admin/audit", &t).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(
        types(&all)[0],
        "login_succeeded",
        "newest first: root's sign-in"
    );
    let redacted: Vec<&serde_json::Value> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["user_id"].is_null() && e["actor_id"].is_null())
        .collect();
    assert!(
        !redacted.is_empty() && redacted.iter().all(|e| e["ip"].is_null()),
        "the deleted account's events, redacted: {redacted:?}"
    );

    let (_, adas) = get(&app, &format!("/v1/admin/audit?user_id={ada}"), &t).await;
    assert_eq!(types(&adas), ["login_succeeded", "login_failed"]);
    let (_, failures) = get(&app, "/v1/admin/audit?type=login_failed", &t).await;
    assert_eq!(types(&failures), ["login_failed"]);
    let (_, admin_events) = get(&app, "/v1/admin/audit?category=admin", &t).await;
    let admin_types = types(&admin_events);
    assert!(
        admin_types.contains(&"admin_role_granted".to_owned())
            && admin_types.iter().all(|k| {
                latchkey_core::audit::EventKind::parse(k)
                    .unwrap()
                    .category()
                    == latchkey_core::audit::Category::Admin
            }),
        "{admin_types:?}"
    );
    let (_, notices) = get(
        &app,
        "/v1/admin/audit?severity=notice&category=authentication",
        &t,
    )
    .await;
    assert_eq!(types(&notices), ["login_failed"]);
    let (_, critical) = get(&app, "/v1/admin/audit?severity=critical", &t).await;
    assert_eq!(
        types(&critical),
        ["admin_role_granted"],
        "granting admin is critical"
    );
    let (_, none) = get(&app, "/v1/admin/audit?category=privacy", &t).await;
    assert_eq!(none["items"], serde_json::json!([]));
    let since = latchkey_core::time_fmt::format_rfc3339(started);
    let (_, recent) = get(&app, &format!("/v1/admin/audit?since={since}"), &t).await;
    assert_eq!(
        types(&recent),
        ["login_succeeded", "login_succeeded"],
        "root's and ada's"
    );
    let (_, older) = get(
        &app,
        &format!("/v1/admin/audit?until={since}&type=login_succeeded"),
        &t,
    )
    .await;
    assert_eq!(types(&older), ["login_succeeded"], "gone's, before");

    // Pages, bound to their filters.
    let (_, first) = get(&app, "/v1/admin/audit?limit=2", &t).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (status, next) = get(
        &app,
        &format!("/v1/admin/audit?limit=2&cursor={cursor}"),
        &t,
    )
    .await;
    assert_eq!(status, 200);
    assert_ne!(next["items"][0]["id"], first["items"][0]["id"]);
    for path in [
        format!("/v1/admin/audit?limit=2&type=login_failed&cursor={cursor}"),
        "/v1/admin/audit?user_id=not-an-id".to_owned(),
        "/v1/admin/audit?type=unknown".to_owned(),
        "/v1/admin/audit?category=nope".to_owned(),
        "/v1/admin/audit?severity=loud".to_owned(),
        "/v1/admin/audit?since=yesterday".to_owned(),
        "/v1/admin/audit?until=2026-13-01T00:00:00Z".to_owned(),
        "/v1/admin/audit?limit=1000".to_owned(),
        "/v1/admin/audit?colour=red".to_owned(),
    ] {
        let (status, body) = get(&app, &path, &t).await;
        assert_eq!(status, 400, "{path}: {body}");
    }
    let (status, body) = get(&app, "/v1/admin/audit", &plain).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.get("items").is_none());
}

/// A sign-in for an address with no account is a `login_failed` event with no
/// account and a keyed identifier of the address (never the address): the
/// same for the same address in any case, another for another address.
#[tokio::test]
async fn a_sign_in_for_an_unknown_address_is_recorded_without_the_address() {
    let app = TestApp::builder()
        .configure(|c| c.rate_limit.enabled = false)
        .spawn()
        .await;
    let root = app.create_user("root@example.com", PASSWORD, true).await;
    crate::admin::grant(&app, root, "admin").await;
    for email in [
        "Nobody@Example.com",
        "nobody@example.com",
        "someone@example.com",
    ] {
        assert_eq!(app.login(email, PASSWORD).await.status(), 401);
    }
    app.settled().await;
    let t = access_token(&app, "root@example.com", "RootAgent/1").await;
    let (status, page) = get(&app, "/v1/admin/audit?type=login_failed", &t).await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{page}");
    let ids: Vec<&str> = items
        .iter()
        .map(|e| {
            assert!(e["user_id"].is_null(), "{e}");
            assert_eq!(e["severity"], "notice");
            let id = e["details"]["identifier"].as_str().unwrap();
            assert_eq!(id.len(), 32, "{e}");
            id
        })
        .collect();
    let mut counts = std::collections::HashMap::new();
    for id in &ids {
        *counts.entry(*id).or_insert(0) += 1;
    }
    let mut counts: Vec<i32> = counts.into_values().collect();
    counts.sort_unstable();
    assert_eq!(
        counts,
        [1, 2],
        "one identifier per address, in any case: {ids:?}"
    );
    let mut db = Db::of(&app).await;
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM security_events WHERE details LIKE '%nobody%' \
             OR details LIKE '%someone%' OR details LIKE '%@%'"
        )
        .await,
        0,
        "no address stored"
    );
    assert!(report(&app).await.intact());
}

/// Two servers on one database write events in turn and at once: each one's
/// guess of the chain head goes stale at every turn (the other wrote), the
/// guarded insert finds it so and reads the head, and the chain stays one
/// line with every event in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_writing_events_in_turn_and_at_once_keep_one_chain() {
    let open = |c: &mut latchkey_server::config::Config| c.rate_limit.enabled = false;
    let a = Arc::new(TestApp::builder().configure(open).spawn().await);
    let b = Arc::new(TestApp::builder().configure(open).beside(&a).spawn().await);
    a.create_user("ada@example.com", PASSWORD, true).await;
    for round in 0..6 {
        let node = if round % 2 == 0 { &a } else { &b };
        assert_eq!(node.login("ada@example.com", PASSWORD).await.status(), 200);
        node.settled().await;
    }
    // Four at once: within the lockout's attempts in flight (5).
    let logins: Vec<_> = (0..4)
        .map(|i| {
            let node = Arc::clone(if i % 2 == 0 { &a } else { &b });
            tokio::spawn(async move { node.login("ada@example.com", PASSWORD).await.status() })
        })
        .collect();
    for login in logins {
        assert_eq!(login.await.unwrap(), 200);
    }
    a.settled().await;
    b.settled().await;
    let r = report(&a).await;
    assert!(r.intact(), "{r:?}");
    let mut db = Db::of(&a).await;
    let stored = db.count("SELECT COUNT(*) FROM security_events").await;
    assert_eq!(i64::try_from(r.checked).unwrap(), stored);
    assert_eq!(stored, 10, "one event per sign-in, none lost");
}
