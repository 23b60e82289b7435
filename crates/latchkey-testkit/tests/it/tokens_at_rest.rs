//! Live one-time links never rest in the database in clear: a copy of the
//! database (or a backup) holds no usable reset, verification or email-change
//! link, queued or sent.

use latchkey_testkit::app::{TestApp, TestAppBuilder};
use serde_json::json;

use crate::support::Db;

const PASSWORD: &str = "correct horse battery staple";
const PREFIXES: [&str; 3] = ["lk_pr_", "lk_ev_", "lk_ec_"];

fn builder() -> TestAppBuilder {
    TestApp::builder().configure(|c| c.rate_limit.enabled = false)
}

/// A port nothing listens on (SMTP there fails, so mail stays queued).
fn dead_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

/// What the database holds, as text: the bytes of the SQLite file and its
/// write-ahead log, or every row of every table of the PostgreSQL schema.
async fn database_contents(app: &TestApp) -> String {
    match Db::of(app).await {
        Db::Postgres(mut conn) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            assert!(tables.iter().any(|t| t == "mail_outbox"), "{tables:?}");
            let mut all = String::new();
            for table in tables {
                let rows: Option<String> = sqlx::query_scalar(&format!(
                    "SELECT string_agg(t::text, ' ') FROM \"{table}\" t"
                ))
                .fetch_one(&mut conn)
                .await
                .unwrap();
                all.push_str(&rows.unwrap_or_default());
            }
            all
        }
        Db::Sqlite(_) => {
            let db = app.state.config.data_dir.join("latchkey.db");
            let mut bytes = std::fs::read(&db).unwrap();
            if let Ok(wal) = std::fs::read(db.with_extension("db-wal")) {
                bytes.extend(wal);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }
}

async fn post(app: &TestApp, path: &str, body: &serde_json::Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Queues one link of each kind: sign-up verification, password reset,
/// email change.
async fn queue_one_link_of_each_kind(app: &TestApp) {
    let r = post(
        app,
        "/v1/signup",
        &json!({"email": "new@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(r.status(), 202);
    app.create_user("ada@example.com", PASSWORD, true).await;
    let r = post(
        app,
        "/v1/password/forgot",
        &json!({"email": "ada@example.com"}),
    )
    .await;
    assert_eq!(r.status(), 202);
    let login: serde_json::Value = app
        .login("ada@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let r = app
        .client
        .post(app.url("/v1/me/email"))
        .bearer_auth(login["access_token"].as_str().unwrap())
        .json(&json!({"new_email": "ada@new.example", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test]
async fn a_copy_of_the_database_holds_no_live_link_while_mail_is_queued() {
    let app = builder().smtp_plain(dead_port()).spawn().await;
    queue_one_link_of_each_kind(&app).await;
    // The verification, the reset link (queued off the request path), the
    // email-change link and its notice to the old address.
    for _ in 0..200 {
        if app.state.store.pending_mail().await.unwrap() >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(app.state.store.pending_mail().await.unwrap() >= 4);
    let contents = database_contents(&app).await;
    assert!(contents.contains("new@example.com"), "the outbox is there");
    for prefix in PREFIXES {
        assert!(!contents.contains(prefix), "{prefix} rests in the database");
    }
}

#[tokio::test]
async fn sent_mail_leaves_no_body_behind() {
    let app = builder().spawn().await;
    queue_one_link_of_each_kind(&app).await;
    for _ in 0..200 {
        if app.mails().len() >= 4 && app.state.store.pending_mail().await.unwrap() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(app.state.store.pending_mail().await.unwrap(), 0);
    // The links went out (the dev transport's files hold them)...
    let sent = app.mails().join("\n");
    for prefix in PREFIXES {
        assert!(sent.contains(prefix), "{prefix} was mailed");
    }
    // ...and the outbox keeps recipients and subjects, not bodies.
    let contents = database_contents(&app).await;
    assert!(contents.contains("Reset your latchkey password"));
    for prefix in PREFIXES {
        assert!(!contents.contains(prefix), "{prefix} rests in the database");
    }
    assert!(!contents.contains("/reset-password"), "a body in clear");
    let kept = Db::of(&app)
        .await
        .count(
            "SELECT COUNT(*) FROM mail_outbox WHERE body_sealed IS NOT NULL \
         OR body_text <> '' OR body_html IS NOT NULL",
        )
        .await;
    assert_eq!(kept, 0, "sent bodies are scrubbed, sealed or not");
}
