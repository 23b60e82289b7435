//! PostgreSQL implementation of latchkey's store ports.

mod aftermath;
mod error;
mod mail;
mod maintenance;
mod mfa;
mod passkeys;
mod sessions;
mod signing_keys;
mod throttles;
mod users;

use async_trait::async_trait;
use latchkey_core::ports::{PoolOptions, Store, StoreError};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

pub use error::map_error;

/// The embedded migrations of this backend.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// latchkey's store on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db`; an
    /// `options=-c search_path=...` parameter selects a schema). Connects eagerly, so
    /// an unreachable server fails here with `Unavailable`, within the pool's
    /// acquire timeout. Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str, pool: &PoolOptions) -> Result<Self, StoreError> {
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
        Ok(Self { pool })
    }

    /// The connection pool (for tests and tools in this workspace).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl Store for PostgresStore {
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
        "postgres"
    }
}
