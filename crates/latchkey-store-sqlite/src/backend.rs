//! The shared queries on SQLite: binding, decoding, transactions, locks.

use async_trait::async_trait;
use latchkey_core::ports::StoreError;
use latchkey_store_sql::{Arg, Backend, Exec, Lock, Query, Row, Transaction};
use sqlx::sqlite::SqliteArguments;
use sqlx::{Row as _, Sqlite, SqlitePool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::map_error;
use crate::time_codec::{from_micros, to_micros};

/// The embedded migrations of this backend.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// SQLite as a [`Backend`]: one connection pool on one file.
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    pool: SqlitePool,
}

impl SqliteBackend {
    pub(crate) fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// The connection pool (for tests and tools in this workspace).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// A statement ready to run: each argument encoded as the schema stores it
/// (timestamps as unix microseconds, booleans as 0/1, UUIDs as 16 bytes).
fn prepare(q: Query<'_>) -> sqlx::query::Query<'_, Sqlite, SqliteArguments<'_>> {
    q.args
        .into_iter()
        .fold(sqlx::query(q.sql), |statement, arg| match arg {
            Arg::Uuid(v) => statement.bind(v),
            Arg::Text(v) => statement.bind(v),
            Arg::Bytes(v) => statement.bind(v),
            Arg::I32(v) => statement.bind(v),
            Arg::I64(v) => statement.bind(v),
            Arg::Bool(v) => statement.bind(v),
            Arg::Time(v) => statement.bind(v.map(to_micros)),
        })
}

/// A result row of SQLite.
pub struct SqliteRow(sqlx::sqlite::SqliteRow);

fn column<'r, T>(row: &'r sqlx::sqlite::SqliteRow, name: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    row.try_get(name).map_err(map_error)
}

impl Row for SqliteRow {
    fn uuid(&self, name: &str) -> Result<Option<Uuid>, StoreError> {
        column(&self.0, name)
    }
    fn text(&self, name: &str) -> Result<Option<String>, StoreError> {
        column(&self.0, name)
    }
    fn bytes(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        column(&self.0, name)
    }
    fn i32(&self, name: &str) -> Result<Option<i32>, StoreError> {
        column(&self.0, name)
    }
    fn i64(&self, name: &str) -> Result<Option<i64>, StoreError> {
        column(&self.0, name)
    }
    fn bool(&self, name: &str) -> Result<Option<bool>, StoreError> {
        column(&self.0, name)
    }
    fn time(&self, name: &str) -> Result<Option<OffsetDateTime>, StoreError> {
        column::<Option<i64>>(&self.0, name)?
            .map(from_micros)
            .transpose()
    }
}

/// Statements on the pool.
pub struct OnPool(SqlitePool);

/// A write transaction (`BEGIN IMMEDIATE`).
pub struct SqliteTx(sqlx::Transaction<'static, Sqlite>);

#[async_trait]
impl Exec for OnPool {
    type Row = SqliteRow;
    async fn execute(&mut self, q: Query<'_>) -> Result<u64, StoreError> {
        let done = prepare(q).execute(&self.0).await.map_err(map_error)?;
        Ok(done.rows_affected())
    }
    async fn fetch_all(&mut self, q: Query<'_>) -> Result<Vec<SqliteRow>, StoreError> {
        let rows = prepare(q).fetch_all(&self.0).await.map_err(map_error)?;
        Ok(rows.into_iter().map(SqliteRow).collect())
    }
    async fn fetch_optional(&mut self, q: Query<'_>) -> Result<Option<SqliteRow>, StoreError> {
        let row = prepare(q)
            .fetch_optional(&self.0)
            .await
            .map_err(map_error)?;
        Ok(row.map(SqliteRow))
    }
}

#[async_trait]
impl Exec for SqliteTx {
    type Row = SqliteRow;
    async fn execute(&mut self, q: Query<'_>) -> Result<u64, StoreError> {
        let done = prepare(q).execute(&mut *self.0).await.map_err(map_error)?;
        Ok(done.rows_affected())
    }
    async fn fetch_all(&mut self, q: Query<'_>) -> Result<Vec<SqliteRow>, StoreError> {
        let rows = prepare(q)
            .fetch_all(&mut *self.0)
            .await
            .map_err(map_error)?;
        Ok(rows.into_iter().map(SqliteRow).collect())
    }
    async fn fetch_optional(&mut self, q: Query<'_>) -> Result<Option<SqliteRow>, StoreError> {
        let row = prepare(q)
            .fetch_optional(&mut *self.0)
            .await
            .map_err(map_error)?;
        Ok(row.map(SqliteRow))
    }
}

#[async_trait]
impl Transaction for SqliteTx {
    async fn commit(self) -> Result<(), StoreError> {
        self.0.commit().await.map_err(map_error)
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    type Row = SqliteRow;
    type Pool = OnPool;
    type Tx = SqliteTx;

    const NAME: &'static str = "sqlite";

    /// SQLite's default `BINARY` collation compares UTF-8 bytes: code point order.
    const CODE_POINT_ORDER: &'static str = "";

    fn on_pool(&self) -> OnPool {
        OnPool(self.pool.clone())
    }

    /// `BEGIN IMMEDIATE`: the write lock is taken before anything is read, so
    /// concurrent writers queue on the busy timeout instead of failing on a
    /// stale read snapshot (`SQLITE_BUSY_SNAPSHOT`).
    async fn begin(&self) -> Result<SqliteTx, StoreError> {
        let tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_error)?;
        Ok(SqliteTx(tx))
    }

    /// None: write transactions already exclude each other.
    fn lock(_lock: Lock) -> String {
        String::new()
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
