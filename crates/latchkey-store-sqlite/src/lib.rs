//! SQLite implementation of latchkey's store ports.
//!
//! The queries are `latchkey-store-sql`'s, written once for every engine; this
//! crate is what is SQLite's own: the file opened in WAL mode with foreign keys
//! on, `synchronous = NORMAL` and a busy timeout; write transactions that take
//! the write lock first (`BEGIN IMMEDIATE`); timestamps stored as unix
//! microseconds, so that a value read back equals the value written, and ids as
//! 16-byte UUIDs; the migrations; the error mapping.

mod backend;
mod error;
mod time_codec;

use std::path::Path;
use std::time::Duration;

use latchkey_core::ports::{PoolOptions, StoreError};
use latchkey_store_sql::SqlStore;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::ConnectOptions;

pub use backend::SqliteBackend;
pub use error::map_error;

/// latchkey's store on an SQLite file.
pub type SqliteStore = SqlStore<SqliteBackend>;

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

/// Opens (creating the file if missing) the database at `path`. Does not
/// migrate: call `Store::migrate`. A new file is created readable and writable
/// by its owner only (0600 on Unix), and SQLite gives its `-wal` and `-shm`
/// files the same mode: password hashes and sealed secrets are not left
/// world-readable in a shared directory. An existing file keeps its mode.
pub async fn open(
    path: &Path,
    pool: &PoolOptions,
    busy_timeout: Duration,
) -> Result<SqliteStore, StoreError> {
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
    Ok(SqlStore::new(SqliteBackend::new(pool)))
}
