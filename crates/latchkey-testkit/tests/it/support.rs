//! Helpers shared by the integration tests.

use latchkey_testkit::app::TestApp;
use serde_json::Value;

/// Asserts `response` is a problem+json with `status` and `code`, whose
/// `request_id` equals the `x-request-id` header; returns the body.
pub async fn assert_problem(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let header_id = response
        .headers()
        .get("x-request-id")
        .expect("x-request-id header")
        .to_str()
        .unwrap()
        .to_owned();
    let content_type = response
        .headers()
        .get("content-type")
        .expect("content-type")
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status);
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["type"], format!("/problems/{code}"));
    assert!(body["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(body["detail"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(body["request_id"], header_id.as_str());
    body
}

/// Text that must never appear in a response body (internal details).
pub fn assert_no_internals(text: &str) {
    for needle in [
        "sqlx",
        "SQLITE",
        "panicked",
        "src/",
        ".rs:",
        "backtrace",
        "stack",
    ] {
        assert!(!text.contains(needle), "response leaks {needle:?}: {text}");
    }
}

/// A POST with a JSON body.
pub async fn post_json(app: &TestApp, path: &str, body: &str) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// `POST path` with a JSON body as the client `from` (`X-Forwarded-For`; the
/// server must trust the loopback proxy).
pub async fn post_from(
    app: &TestApp,
    path: &str,
    from: &str,
    body: serde_json::Value,
) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("x-forwarded-for", from)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// `POST /v1/token/refresh` with `refresh_token` in the body (token mode).
pub async fn token_refresh(app: &TestApp, refresh_token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/token/refresh"))
        .json(&serde_json::json!({ "refresh_token": refresh_token }))
        .send()
        .await
        .unwrap()
}

/// Refreshes with `refresh_token` (token mode), expects `200`, and returns the
/// new access token: one whose session keeps its original sign-in time.
pub async fn refreshed_access_token(app: &TestApp, refresh_token: &str) -> String {
    let r = token_refresh(app, refresh_token).await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The process-wide log capture (installed by the first server start).
pub fn captured_logs() -> latchkey_testkit::logs::Captured {
    latchkey_testkit::logs::captured()
}

/// The decoded header and claims of a JWT (no signature check).
pub fn jwt_parts(jwt: &str) -> (Value, Value) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut it = jwt.split('.');
    let header = serde_json::from_slice(&b64.decode(it.next().unwrap()).unwrap()).unwrap();
    let payload = serde_json::from_slice(&b64.decode(it.next().unwrap()).unwrap()).unwrap();
    (header, payload)
}

/// A direct connection to a test server's database (its PostgreSQL schema, or
/// its SQLite file), for tests that must look under the store.
pub enum Db {
    /// The server runs on PostgreSQL.
    Postgres(sqlx::PgConnection),
    /// The server runs on SQLite.
    Sqlite(sqlx::SqliteConnection),
}

impl Db {
    /// Connects to `app`'s database.
    pub async fn of(app: &TestApp) -> Self {
        use sqlx::Connection;
        match app.state.config.database.url.as_deref() {
            Some(url) if url.starts_with("postgres") => {
                Self::Postgres(sqlx::PgConnection::connect(url).await.unwrap())
            }
            _ => {
                let db = app.state.config.data_dir.join("latchkey.db");
                let url = format!("sqlite:{}", db.display());
                Self::Sqlite(sqlx::SqliteConnection::connect(&url).await.unwrap())
            }
        }
    }

    /// Runs one statement.
    pub async fn execute(&mut self, sql: &str) {
        match self {
            Self::Postgres(c) => drop(sqlx::query(sql).execute(c).await.unwrap()),
            Self::Sqlite(c) => drop(sqlx::query(sql).execute(c).await.unwrap()),
        }
    }

    /// The one number `sql` answers.
    pub async fn count(&mut self, sql: &str) -> i64 {
        match self {
            Self::Postgres(c) => sqlx::query_scalar(sql).fetch_one(c).await.unwrap(),
            Self::Sqlite(c) => sqlx::query_scalar(sql).fetch_one(c).await.unwrap(),
        }
    }
}
