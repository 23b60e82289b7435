//! PostgreSQL implementation of latchkey's store ports.
//!
//! The queries are `latchkey-store-sql`'s, written once for every engine; this
//! crate is what is PostgreSQL's own: connecting, transactions under READ
//! COMMITTED whose reads take row locks in one order (`FOR UPDATE`,
//! `FOR NO KEY UPDATE`, `SKIP LOCKED` for the mail queue), native `uuid`,
//! `timestamptz` and `boolean` columns, the migrations, the error mapping.

mod backend;
mod error;

use latchkey_core::ports::{PoolOptions, StoreError};
use latchkey_store_sql::SqlStore;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::ConnectOptions;

pub use backend::PostgresBackend;
pub use error::map_error;

/// latchkey's store on PostgreSQL.
pub type PostgresStore = SqlStore<PostgresBackend>;

/// Connects to `url` (`postgres://user:pass@host:port/db`; an
/// `options=-c search_path=...` parameter selects a schema). Connects eagerly,
/// so an unreachable server fails here with `Unavailable`, within the pool's
/// acquire timeout. Does not migrate: call `Store::migrate`.
pub async fn connect(url: &str, pool: &PoolOptions) -> Result<PostgresStore, StoreError> {
    let options = url
        .parse::<PgConnectOptions>()
        .map_err(|e: sqlx::Error| StoreError::Internal(Box::new(e)))?
        // Every statement at trace, not debug: the mail worker polls twice a
        // second and would otherwise bury `debug` in SQL. Slow ones still warn.
        .log_statements(log::LevelFilter::Trace);
    let pool = PgPoolOptions::new()
        .max_connections(pool.max_connections)
        .min_connections(pool.min_connections)
        .acquire_timeout(pool.acquire_timeout)
        .connect_with(options)
        .await
        .map_err(map_error)?;
    Ok(SqlStore::new(PostgresBackend::new(pool)))
}
