//! SQLite implementation of latchkey's store ports.
//!
//! The file is opened in WAL mode with foreign keys on, `synchronous = NORMAL` and a
//! busy timeout. Timestamps are stored as unix microseconds so that a value read
//! back equals the value written; ids as 16-byte UUIDs.

mod aftermath;
mod error;
mod mail;
mod maintenance;
mod mfa;
mod passkeys;
mod sessions;
mod signing_keys;
mod throttles;
mod time_codec;
mod users;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use latchkey_core::ports::{PoolOptions, Store, StoreError};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqlitePool};

pub use error::map_error;

/// The embedded migrations of this backend.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// latchkey's store on an SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

/// Creates `path` empty with mode 0600 unless it exists (an empty file is a
/// valid, empty SQLite database).
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Unavailable(Box::new(e))),
    }
}

impl SqliteStore {
    /// Opens (creating the file if missing) the database at `path`. Does not migrate:
    /// call [`Store::migrate`]. A new file is created readable and writable by
    /// its owner only (0600 on Unix), and SQLite gives its `-wal` and `-shm`
    /// files the same mode: password hashes and sealed secrets are not left
    /// world-readable in a shared directory. An existing file keeps its mode.
    pub async fn open(
        path: &Path,
        pool: &PoolOptions,
        busy_timeout: Duration,
    ) -> Result<Self, StoreError> {
        create_private_file(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(busy_timeout)
            // Every statement at trace, not debug: the mail worker polls twice a
            // second and would otherwise bury `debug` in SQL. Slow ones still warn.
            .log_statements(log::LevelFilter::Trace);
        let pool = SqlitePoolOptions::new()
            .max_connections(pool.max_connections)
            .min_connections(pool.min_connections)
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(map_error)?;
        Ok(Self { pool })
    }

    /// Starts a write transaction with `BEGIN IMMEDIATE`: the write lock is taken
    /// before anything is read, so concurrent writers queue on the busy timeout
    /// instead of failing on a stale read snapshot (`SQLITE_BUSY_SNAPSHOT`).
    pub(crate) async fn write_transaction(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_error)
    }

    /// The connection pool (for tests and tools in this workspace).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await.map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(inner) => map_error(inner),
            other => StoreError::Internal(Box::new(other)),
        })
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}
