//! The shared queries on PostgreSQL: binding, decoding, transactions, locks.

use async_trait::async_trait;
use latchkey_core::ports::StoreError;
use latchkey_store_sql::{Arg, Backend, Exec, Lock, Query, Row, Transaction};
use sqlx::postgres::PgArguments;
use sqlx::{PgPool, Postgres, Row as _};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::map_error;

/// The embedded migrations of this backend.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// PostgreSQL as a [`Backend`]: one connection pool.
#[derive(Debug, Clone)]
pub struct PostgresBackend {
    pool: PgPool,
}

impl PostgresBackend {
    pub(crate) fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The connection pool (for tests and tools in this workspace).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// A statement ready to run, each argument with its PostgreSQL type (a NULL
/// too: the server sees `uuid`, `timestamptz`, ... rather than `unknown`).
fn prepare(q: Query<'_>) -> sqlx::query::Query<'_, Postgres, PgArguments> {
    let mut statement = sqlx::query(q.sql);
    for arg in q.args {
        statement = match arg {
            Arg::Uuid(v) => statement.bind(v),
            Arg::Text(v) => statement.bind(v),
            Arg::Bytes(v) => statement.bind(v),
            Arg::I32(v) => statement.bind(v),
            Arg::I64(v) => statement.bind(v),
            Arg::Bool(v) => statement.bind(v),
            Arg::Time(v) => statement.bind(v),
        };
    }
    statement
}

/// A result row of PostgreSQL.
pub struct PgRow(sqlx::postgres::PgRow);

impl PgRow {
    fn get<'r, T>(&'r self, name: &str) -> Result<T, StoreError>
    where
        T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
    {
        self.0.try_get(name).map_err(map_error)
    }
}

impl Row for PgRow {
    fn uuid(&self, name: &str) -> Result<Option<Uuid>, StoreError> {
        self.get(name)
    }
    fn text(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.get(name)
    }
    fn bytes(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(name)
    }
    fn i32(&self, name: &str) -> Result<Option<i32>, StoreError> {
        self.get(name)
    }
    fn i64(&self, name: &str) -> Result<Option<i64>, StoreError> {
        self.get(name)
    }
    fn bool(&self, name: &str) -> Result<Option<bool>, StoreError> {
        self.get(name)
    }
    fn time(&self, name: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        self.get(name)
    }
}

/// Statements on the pool.
pub struct OnPool(PgPool);

/// A transaction under READ COMMITTED.
pub struct PgTx(sqlx::Transaction<'static, Postgres>);

#[async_trait]
impl Exec for OnPool {
    type Row = PgRow;
    async fn execute(&mut self, q: Query<'_>) -> Result<u64, StoreError> {
        let done = prepare(q).execute(&self.0).await.map_err(map_error)?;
        Ok(done.rows_affected())
    }
    async fn fetch_all(&mut self, q: Query<'_>) -> Result<Vec<PgRow>, StoreError> {
        let rows = prepare(q).fetch_all(&self.0).await.map_err(map_error)?;
        Ok(rows.into_iter().map(PgRow).collect())
    }
    async fn fetch_optional(&mut self, q: Query<'_>) -> Result<Option<PgRow>, StoreError> {
        let row = prepare(q)
            .fetch_optional(&self.0)
            .await
            .map_err(map_error)?;
        Ok(row.map(PgRow))
    }
}

#[async_trait]
impl Exec for PgTx {
    type Row = PgRow;
    async fn execute(&mut self, q: Query<'_>) -> Result<u64, StoreError> {
        let done = prepare(q).execute(&mut *self.0).await.map_err(map_error)?;
        Ok(done.rows_affected())
    }
    async fn fetch_all(&mut self, q: Query<'_>) -> Result<Vec<PgRow>, StoreError> {
        let rows = prepare(q)
            .fetch_all(&mut *self.0)
            .await
            .map_err(map_error)?;
        Ok(rows.into_iter().map(PgRow).collect())
    }
    async fn fetch_optional(&mut self, q: Query<'_>) -> Result<Option<PgRow>, StoreError> {
        let row = prepare(q)
            .fetch_optional(&mut *self.0)
            .await
            .map_err(map_error)?;
        Ok(row.map(PgRow))
    }
}

#[async_trait]
impl Transaction for PgTx {
    async fn commit(self) -> Result<(), StoreError> {
        self.0.commit().await.map_err(map_error)
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    type Row = PgRow;
    type Pool = OnPool;
    type Tx = PgTx;

    const NAME: &'static str = "postgres";

    const CODE_POINT_ORDER: &'static str = " COLLATE \"C\"";

    fn on_pool(&self) -> OnPool {
        OnPool(self.pool.clone())
    }

    async fn begin(&self) -> Result<PgTx, StoreError> {
        Ok(PgTx(self.pool.begin().await.map_err(map_error)?))
    }

    fn lock(lock: Lock) -> String {
        match lock {
            Lock::Update => " FOR UPDATE".to_owned(),
            Lock::NoKeyUpdate => " FOR NO KEY UPDATE".to_owned(),
            Lock::UpdateOf(alias) => format!(" FOR UPDATE OF {alias}"),
            Lock::UpdateSkipLocked => " FOR UPDATE SKIP LOCKED".to_owned(),
        }
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
}
