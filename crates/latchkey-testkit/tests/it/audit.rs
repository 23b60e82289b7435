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
