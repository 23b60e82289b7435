//! Per-test databases: a fresh SQLite file, or a fresh PostgreSQL schema, so that
//! tests run in parallel without sharing state.

use std::ops::Deref;
use std::time::Duration;

use latchkey_core::ports::{PoolOptions, Store};
use latchkey_store_postgres::PostgresStore;
use latchkey_store_sqlite::SqliteStore;
use sqlx::Connection;
use tempfile::TempDir;

/// The variable naming the PostgreSQL server tests may use.
pub const POSTGRES_ENV: &str = "LATCHKEY_TEST_POSTGRES_URL";

/// Pool settings for tests: small, with a short acquire timeout.
pub fn test_pool() -> PoolOptions {
    PoolOptions {
        max_connections: 5,
        min_connections: 0,
        acquire_timeout: Duration::from_secs(10),
    }
}

/// The PostgreSQL URL from [`POSTGRES_ENV`], or `None` after printing the
/// `skipped:` line that marks the test as skipped.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: {POSTGRES_ENV} not set");
            None
        }
    }
}

/// A store on a fresh SQLite file; the directory lives as long as the guard.
pub struct SqliteGuard {
    store: SqliteStore,
    _dir: TempDir,
}

impl Deref for SqliteGuard {
    type Target = SqliteStore;
    fn deref(&self) -> &SqliteStore {
        &self.store
    }
}

/// A migrated store on a new SQLite file.
pub async fn fresh_sqlite() -> SqliteGuard {
    let dir = tempfile::tempdir().unwrap_or_else(|e| fail(&format!("tempdir: {e}")));
    let store = SqliteStore::open(
        &dir.path().join("test.db"),
        &test_pool(),
        Duration::from_secs(5),
    )
    .await
    .unwrap_or_else(|e| fail(&format!("open sqlite: {e:?}")));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| fail(&format!("migrate sqlite: {e:?}")));
    SqliteGuard { store, _dir: dir }
}

/// A uniquely named PostgreSQL schema (`lkt_<uuid>`), dropped with everything in it
/// when the guard is dropped.
pub struct PgSchema {
    admin_url: String,
    name: String,
    url: String,
}

impl PgSchema {
    /// Creates the schema; `None` (test skipped) when [`POSTGRES_ENV`] is unset.
    pub async fn create_or_skip() -> Option<Self> {
        let admin_url = postgres_admin_url()?;
        let name = format!("lkt_{}", uuid::Uuid::now_v7().simple());
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| fail(&format!("connect to {POSTGRES_ENV}: {e}")));
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| fail(&format!("create schema: {e}")));
        let _ = conn.close().await;
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{separator}options=-c%20search_path%3D{name}");
        Some(Self {
            admin_url,
            name,
            url,
        })
    }

    /// A URL whose connections use only this schema.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        // Drop may run inside or outside a runtime: use a thread with its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(&sql).execute(&mut conn).await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// A migrated store on a fresh PostgreSQL schema, with its guard.
pub struct PostgresGuard {
    store: PostgresStore,
    _schema: PgSchema,
}

impl Deref for PostgresGuard {
    type Target = PostgresStore;
    fn deref(&self) -> &PostgresStore {
        &self.store
    }
}

/// A migrated store on a new schema; `None` (skipped) without PostgreSQL.
pub async fn fresh_postgres() -> Option<PostgresGuard> {
    let schema = PgSchema::create_or_skip().await?;
    let store = PostgresStore::connect(schema.url(), &test_pool())
        .await
        .unwrap_or_else(|e| fail(&format!("connect postgres: {e:?}")));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| fail(&format!("migrate postgres: {e:?}")));
    Some(PostgresGuard {
        store,
        _schema: schema,
    })
}

#[allow(clippy::panic)] // test harness: a failure to set up is a test failure
fn fail(message: &str) -> ! {
    panic!("{message}")
}
