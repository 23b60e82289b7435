//! Per-test databases: a fresh SQLite file, or a fresh PostgreSQL schema, so that
//! tests run in parallel without sharing state.
//!
//! PostgreSQL tests run only when [`POSTGRES_ENV`] names a server (an admin URL,
//! e.g. `postgres://postgres@127.0.0.1:5432/test`). Built without it, they are listed
//! as ignored with the reason (the crate's build script sets
//! `cfg(latchkey_postgres_unset)`); built with it but run without, they print
//! [`skip_postgres`]'s `skipped:` line and pass. When the variable *is* set, failing to
//! reach the server fails the test: CI must never skip silently.

use std::ops::Deref;
use std::time::Duration;

use crate::app::fail;
use latchkey_core::ports::{PoolOptions, Store};
use latchkey_store_postgres::PostgresStore;
use latchkey_store_sqlite::SqliteStore;
use sqlx::Connection;
use tempfile::TempDir;

/// The variable naming the PostgreSQL server tests may use.
pub const POSTGRES_ENV: &str = "LATCHKEY_TEST_POSTGRES_URL";

/// How long creating or dropping a test schema may take before giving up.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Pool settings for tests: small, with a short acquire timeout.
pub fn test_pool() -> PoolOptions {
    PoolOptions {
        max_connections: 5,
        min_connections: 0,
        acquire_timeout: Duration::from_secs(10),
    }
}

/// Prints the line that marks a PostgreSQL test as skipped (`skipped:
/// LATCHKEY_TEST_POSTGRES_URL not set`) to stderr. Call it, then return from the test.
pub fn skip_postgres() {
    eprintln!("skipped: {POSTGRES_ENV} not set");
}

/// The PostgreSQL admin URL from [`POSTGRES_ENV`], or `None` (empty counts as
/// unset) after calling [`skip_postgres`], so `let Some(url) = postgres_admin_url()
/// else { return };` is a complete skip.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var(POSTGRES_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            skip_postgres();
            None
        }
    }
}

/// A migrated store on its own SQLite file in a temporary directory; derefs to the
/// store. The directory (and file) are deleted when the guard is dropped.
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

/// A migrated store on a new SQLite file. Panics (fails the test) if that fails.
pub async fn fresh_sqlite() -> SqliteGuard {
    let dir = tempfile::tempdir().unwrap_or_else(|e| fail(&format!("tempdir: {e}")));
    let store = latchkey_store_sqlite::open(
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

/// A uniquely named, empty PostgreSQL schema (`lkt_<uuid>`) for one test, dropped
/// with everything in it (`DROP SCHEMA ... CASCADE`) when the guard is dropped.
///
/// [`PgSchema::url`] is the admin URL plus `options=-c search_path=<schema>`, which
/// sqlx honours: every connection made from it (a [`PostgresStore`], or a whole
/// server given it as its database URL) creates and finds its tables in this schema
/// only. Keep the guard alive as long as anything uses the URL. Dropping it blocks
/// (at most ~10 s) on a private thread and runtime, so it is safe inside or outside
/// an async context.
pub struct PgSchema {
    admin_url: String,
    name: String,
    url: String,
}

impl PgSchema {
    /// Creates the schema; `None` (test skipped, see [`postgres_admin_url`]) when
    /// [`POSTGRES_ENV`] is unset. Panics (fails the test) if the server named by the
    /// variable cannot be reached.
    pub async fn create_or_skip() -> Option<Self> {
        let admin_url = postgres_admin_url()?;
        let name = format!("lkt_{}", uuid::Uuid::now_v7().simple());
        let create = async {
            let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
            sqlx::query(&format!("CREATE SCHEMA {name}"))
                .execute(&mut conn)
                .await?;
            conn.close().await
        };
        match tokio::time::timeout(ADMIN_TIMEOUT, create).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => fail(&format!("create schema via {POSTGRES_ENV}: {e}")),
            Err(_) => fail(&format!("create schema via {POSTGRES_ENV}: timed out")),
        }
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

    /// The schema's name (`lkt_` + 32 lowercase hex digits; safe to splice into SQL).
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
                let drop_schema = async {
                    let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
                    sqlx::query(&sql).execute(&mut conn).await?;
                    conn.close().await
                };
                // Best effort: a leftover `lkt_` schema is harmless and easy to spot.
                let _ = tokio::time::timeout(ADMIN_TIMEOUT, drop_schema).await;
            });
        })
        .join();
    }
}

/// A migrated store on its own PostgreSQL schema; derefs to the store. The schema
/// is dropped when the guard is dropped.
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

/// A migrated store on a new [`PgSchema`]; `None` (skipped) without
/// [`POSTGRES_ENV`]. Panics (fails the test) if connecting or migrating fails.
pub async fn fresh_postgres() -> Option<PostgresGuard> {
    let schema = PgSchema::create_or_skip().await?;
    let store = latchkey_store_postgres::connect(schema.url(), &test_pool())
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
