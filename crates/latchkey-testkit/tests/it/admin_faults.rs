//! Administration under faults: an import the database stops part-way, role
//! changes between two nodes while their Redis is up, down, and back, and
//! admin calls while the database connections are cut.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use latchkey_core::auth::{AuthError, Caller, ClientContext, ImportRecord, ImportReport};
use latchkey_testkit::app::TestApp;
use latchkey_testkit::redis_server::RedisServer;
use reqwest::Method;
use serde_json::{json, Value};

use crate::admin::{call, grant, token, PASSWORD};
use crate::support::Db;

fn bulk(count: usize) -> Vec<ImportRecord> {
    (0..count)
        .map(|i| ImportRecord {
            email: format!("bulk{i:04}@example.com"),
            ..ImportRecord::default()
        })
        .collect()
}

const BULK_ACCOUNTS: &str = "SELECT COUNT(*) FROM users WHERE email_normalized LIKE 'bulk%'";

/// A trigger that refuses the account `bulk1500@` (in the second batch of
/// 1,000), on either engine.
async fn refuse_one_insert(db: &mut Db) {
    match db {
        Db::Sqlite(_) => {
            db.execute(
                "CREATE TRIGGER refuse_one BEFORE INSERT ON users \
                 WHEN NEW.email_normalized = 'bulk1500@example.com' \
                 BEGIN SELECT RAISE(ABORT, 'injected fault'); END",
            )
            .await;
        }
        Db::Postgres(_) => {
            db.execute(
                "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.email_normalized = 'bulk1500@example.com' THEN \
                 RAISE EXCEPTION 'injected fault'; END IF; RETURN NEW; END $$",
            )
            .await;
            db.execute(
                "CREATE TRIGGER refuse_one BEFORE INSERT ON users \
                 FOR EACH ROW EXECUTE FUNCTION refuse_one()",
            )
            .await;
        }
    }
}

async fn allow_every_insert(db: &mut Db) {
    match db {
        Db::Sqlite(_) => db.execute("DROP TRIGGER refuse_one").await,
        Db::Postgres(_) => db.execute("DROP TRIGGER refuse_one ON users").await,
    }
}

#[tokio::test]
async fn an_import_stopped_part_way_keeps_whole_batches_and_a_rerun_finishes_it() {
    let app = TestApp::spawn().await;
    let admin = &app.state.services.admin;
    let client = ClientContext::default();
    let mut db = Db::of(&app).await;

    // A role that does not exist refuses the whole import before any write,
    // even when it is named only in the last batch.
    let mut records = bulk(2_500);
    records[2_400].roles = vec!["ghost".into()];
    let stopped = admin
        .import_users(Caller::Operator, &records, &client)
        .await
        .unwrap_err();
    assert_eq!(stopped.written, ImportReport::default());
    assert!(
        matches!(&stopped.cause, AuthError::UnknownRole(name) if name == "ghost"),
        "{stopped:?}"
    );
    assert_eq!(db.count(BULK_ACCOUNTS).await, 0);

    // The database fails in the second batch: the first stays, whole, with
    // its events; nothing of the second is written.
    let events_before = db
        .count("SELECT COUNT(*) FROM security_events WHERE kind = 'account_created'")
        .await;
    refuse_one_insert(&mut db).await;
    let records = bulk(2_500);
    let stopped = admin
        .import_users(Caller::Operator, &records, &client)
        .await
        .unwrap_err();
    assert_eq!(
        stopped.written,
        ImportReport {
            created: 1_000,
            skipped: 0
        }
    );
    assert!(matches!(stopped.cause, AuthError::Store(_)), "{stopped:?}");
    assert_eq!(db.count(BULK_ACCOUNTS).await, 1_000);
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM users WHERE email_normalized >= 'bulk1000' \
             AND email_normalized < 'bulk2000'"
        )
        .await,
        0,
        "nothing of the failed batch"
    );
    let events_after = db
        .count("SELECT COUNT(*) FROM security_events WHERE kind = 'account_created'")
        .await;
    assert_eq!(
        events_after - events_before,
        1_000,
        "one event per account kept"
    );

    // The same records again finish the job.
    allow_every_insert(&mut db).await;
    let done = admin
        .import_users(Caller::Operator, &records, &client)
        .await
        .unwrap();
    assert_eq!(
        done,
        ImportReport {
            created: 1_500,
            skipped: 1_000
        }
    );
    assert_eq!(db.count(BULK_ACCOUNTS).await, 2_500);
}

/// Whether the cache bus carries `a`'s changes to `b`, tried until `within`
/// has passed: `b` holds the profile in its cache (5 s), so a rename on `a`
/// to a name never used before that shows on `b` 25 ms later came over the bus.
async fn bus_carries(a: &TestApp, b: &TestApp, token: &str, within: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < within {
        assert_eq!(b.get_as("/v1/me", token).await.status(), 200);
        let name = format!("Ada {}", uuid::Uuid::new_v4().simple());
        let r = a
            .client
            .patch(a.url("/v1/me"))
            .bearer_auth(token)
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        tokio::time::sleep(Duration::from_millis(25)).await;
        let shown: Value = b.get_as("/v1/me", token).await.json().await.unwrap();
        if shown["name"] == name.as_str() {
            return true;
        }
    }
    false
}

async fn admin_status(node: &TestApp, token: &str) -> u16 {
    call(node, Method::GET, "/v1/admin/users", token, None)
        .await
        .status()
        .as_u16()
}

/// Whether `node` answers `token` on the admin API with `want` before
/// `since` is `limit` old.
async fn answers_within(
    node: &TestApp,
    token: &str,
    want: u16,
    since: Instant,
    limit: Duration,
) -> bool {
    let mut seen = Vec::new();
    while since.elapsed() < limit {
        let status = admin_status(node, token).await;
        if status == want {
            return true;
        }
        if seen.last() != Some(&status) {
            seen.push(status);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("answers seen instead of {want}: {seen:?}");
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_changes_reach_the_other_node_at_once_and_within_its_cache_ttl_while_redis_is_down() {
    let mut redis = RedisServer::start();
    let (a, b) = crate::rate_limit::two_nodes_on_one_redis(redis.url()).await;
    let root = a.create_user("root@example.com", PASSWORD, true).await;
    let ada = a.create_user("ada@example.com", PASSWORD, true).await;
    grant(&a, root, "admin").await;
    grant(&a, ada, "admin").await;
    let root_token = token(&a, "root@example.com").await;
    let ada_token = token(&a, "ada@example.com").await;
    let set_roles = |roles: Value| {
        let (a, root_token) = (&a, &root_token);
        async move {
            call(
                a,
                Method::PUT,
                &format!("/v1/admin/users/{ada}/roles"),
                root_token,
                Some(json!({ "roles": roles })),
            )
            .await
            .status()
            .as_u16()
        }
    };
    let within_cache = Duration::from_secs(4);
    assert!(
        bus_carries(&a, &b, &ada_token, Duration::from_secs(10)).await,
        "the cache bus connects"
    );

    // `b` has just read ada's permissions and remembers them for 5 s: a
    // revoke and a grant on `a` show on `b` before that, over the bus.
    assert_eq!(admin_status(&b, &ada_token).await, 200);
    let cached = Instant::now();
    assert_eq!(set_roles(json!([])).await, 200);
    assert!(
        answers_within(&b, &ada_token, 403, cached, within_cache).await,
        "a revoke reaches the other node at once"
    );
    let cached = Instant::now();
    assert_eq!(set_roles(json!(["admin"])).await, 200);
    assert!(
        answers_within(&b, &ada_token, 200, cached, within_cache).await,
        "a grant reaches the other node at once"
    );

    // Redis down: admin calls are made all the same (the database holds
    // them), and the other node shows them once its cached answer expires.
    redis.stop();
    assert_eq!(admin_status(&b, &ada_token).await, 200);
    let changed = Instant::now();
    assert_eq!(set_roles(json!([])).await, 200);
    assert_eq!(admin_status(&a, &ada_token).await, 403, "at once on `a`");
    assert!(
        answers_within(&b, &ada_token, 403, changed, Duration::from_secs(15)).await,
        "the revoke shows on the other node within its cache TTL"
    );

    // Redis back: the bus heals by itself, and changes travel at once again.
    redis.restart();
    assert!(
        bus_carries(&a, &b, &ada_token, Duration::from_secs(30)).await,
        "the cache bus reconnects"
    );
    assert_eq!(admin_status(&b, &ada_token).await, 403);
    let cached = Instant::now();
    assert_eq!(set_roles(json!(["admin"])).await, 200);
    assert!(
        answers_within(&b, &ada_token, 200, cached, within_cache).await,
        "a grant reaches the other node at once after the outage"
    );
    let seen: Value = call(
        &b,
        Method::GET,
        &format!("/v1/admin/users/{ada}"),
        &root_token,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(seen["roles"], json!(["admin"]), "{seen}");
}

/// Every answer of [`admin_load`]'s clients, in the order they came.
type Answers = Arc<Mutex<Vec<(u16, Value)>>>;

/// Three clients calling the admin API as `token` until `stop`: one flips
/// `ada`'s roles between `[]` and `["admin"]`, two read the users page.
fn admin_load(
    app: &Arc<TestApp>,
    token: &Arc<String>,
    ada: uuid::Uuid,
    stop: &Arc<AtomicBool>,
) -> (Vec<tokio::task::JoinHandle<()>>, Answers) {
    let answers = Answers::default();
    let clients = (0..3)
        .map(|client| {
            let (app, t, stop, answers) = (
                Arc::clone(app),
                Arc::clone(token),
                Arc::clone(stop),
                Arc::clone(&answers),
            );
            tokio::spawn(async move {
                let mut round = 0_u32;
                while !stop.load(Ordering::SeqCst) {
                    round += 1;
                    let r = if client == 0 {
                        let roles = if round.is_multiple_of(2) {
                            json!(["admin"])
                        } else {
                            json!([])
                        };
                        call(
                            &app,
                            Method::PUT,
                            &format!("/v1/admin/users/{ada}/roles"),
                            &t,
                            Some(json!({ "roles": roles })),
                        )
                        .await
                    } else {
                        call(&app, Method::GET, "/v1/admin/users", &t, None).await
                    };
                    let status = r.status().as_u16();
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    answers.lock().unwrap().push((status, body));
                }
            })
        })
        .collect();
    (clients, answers)
}

/// Admin calls (page reads and role changes) from a few clients while every
/// database connection of the server is cut twice, as a PostgreSQL restart
/// does (the shared test server itself cannot be restarted under the other
/// tests): each answer is a 200 or a 503 `unavailable`, never a 500, and the
/// server serves again at once with no restart of its own. The role written
/// last is the one the store holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    latchkey_postgres_unset,
    ignore = "needs LATCHKEY_TEST_POSTGRES_URL (unset when built)"
)]
async fn admin_calls_while_the_database_connections_are_cut_answer_503_at_worst_and_recover() {
    use sqlx::Connection as _;

    let Some(builder) = TestApp::builder().on_postgres().await else {
        return;
    };
    // The server's connections carry a name of their own: only they are cut.
    let name = format!("lk-cut-{}", uuid::Uuid::new_v4().simple());
    let app = Arc::new(
        builder
            .configure(|c| {
                c.rate_limit.enabled = false;
                let url = c.database.url.take().unwrap();
                c.database.url = Some(format!("{url}&application_name={name}"));
            })
            .spawn()
            .await,
    );
    let root = app.create_user("root@example.com", PASSWORD, true).await;
    let ada = app.create_user("ada@example.com", PASSWORD, true).await;
    grant(&app, root, "admin").await;
    let root_token = Arc::new(token(&app, "root@example.com").await);
    let stop = Arc::new(AtomicBool::new(false));
    let (clients, answers) = admin_load(&app, &root_token, ada, &stop);
    let admin_url = std::env::var(latchkey_testkit::db::POSTGRES_ENV).unwrap();
    let mut dba = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    let mut cut = 0_i64;
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        cut += sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1) AS cut",
        )
        .bind(&name)
        .fetch_one(&mut dba)
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    assert!(cut >= 2, "the server's connections were cut ({cut})");
    let answers = std::mem::take(&mut *answers.lock().unwrap());
    assert!(
        answers.len() > 10,
        "the clients kept calling: {}",
        answers.len()
    );
    for (status, body) in &answers {
        match status {
            200 => {}
            503 => assert_eq!(body["code"], "unavailable", "{body}"),
            _ => panic!("{status} {body}"),
        }
    }
    // Serving again at once, and the store holds the last role written.
    let r = call(
        &app,
        Method::GET,
        &format!("/v1/admin/users/{ada}"),
        &root_token,
        None,
    )
    .await;
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await.unwrap();
    let last_written = answers
        .iter()
        .rev()
        .find(|(status, body)| {
            *status == 200 && body.get("roles").is_some() && body["id"] == ada.to_string()
        })
        .map(|(_, body)| body["roles"].clone());
    if let Some(roles) = last_written {
        assert_eq!(seen["roles"], roles, "{seen}");
    }
    let mut db = Db::of(&app).await;
    let held = db
        .count(&format!(
            "SELECT COUNT(*) FROM user_roles WHERE user_id = '{ada}'"
        ))
        .await;
    assert_eq!(held, i64::from(seen["roles"] == json!(["admin"])));
    // The role changes' events, some cut mid-commit, still form one chain
    // and tell the story of the roles exactly.
    assert_roles_story(&app, ada, &seen["roles"]).await;
}

/// The chain is whole, and `user`'s role events tell the story of their roles
/// exactly: each change starts where the one before it ended (none lost, none
/// recorded for a change undone), from no roles to `now`. (A change can be
/// made and still answered 503 when a cut falls after its commit.)
async fn assert_roles_story(app: &TestApp, user: uuid::Uuid, now: &Value) {
    let report = latchkey_core::audit::verify::verify(&*app.state.store, None)
        .await
        .unwrap();
    assert!(report.intact(), "{report:?}");
    let mut events = app.state.store.user_events(user, 10_000).await.unwrap();
    events.retain(|e| {
        use latchkey_core::audit::EventKind;
        matches!(
            e.kind,
            EventKind::RolesChanged | EventKind::AdminRoleGranted
        )
    });
    events.reverse();
    let mut roles = json!([]);
    for event in &events {
        let details: Value = serde_json::from_str(event.details.as_deref().unwrap()).unwrap();
        assert_eq!(details["before"], roles, "{:?}", event.kind);
        roles = details["after"].clone();
    }
    assert!(events.len() > 2, "{}", events.len());
    assert_eq!(&roles, now);
}
