//! What an SQL engine provides to the shared queries: running a statement on
//! the pool or in a write transaction, decoding rows, and the row-lock clauses.
//! Everything else about an engine (connecting, pragmas, migrations, error
//! codes, how a timestamp is stored) stays in its own crate.

use async_trait::async_trait;
use latchkey_core::ports::StoreError;

use crate::query::Query;
use crate::row::Row;

/// Runs statements: the pool (each statement on any connection) or one open
/// transaction. Every failure is already mapped to [`StoreError`] by the
/// backend's one error mapping.
#[async_trait]
pub trait Exec: Send {
    /// The engine's row.
    type Row: Row;
    /// Runs `q`; returns the number of rows it changed.
    async fn execute(&mut self, q: Query<'_>) -> Result<u64, StoreError>;
    /// Runs `q`; returns every row.
    async fn fetch_all(&mut self, q: Query<'_>) -> Result<Vec<Self::Row>, StoreError>;
    /// Runs `q`; returns the first row, if any.
    async fn fetch_optional(&mut self, q: Query<'_>) -> Result<Option<Self::Row>, StoreError>;

    /// Runs `q`, which must return a row.
    async fn fetch_one(&mut self, q: Query<'_>) -> Result<Self::Row, StoreError> {
        self.fetch_optional(q)
            .await?
            .ok_or_else(|| StoreError::Internal("query returned no row".into()))
    }
}

/// An open write transaction. Dropped without [`Transaction::commit`], it
/// rolls back.
#[async_trait]
pub trait Transaction: Exec {
    /// Commits everything done in it, atomically.
    async fn commit(self) -> Result<(), StoreError>;
}

/// Row locks a read inside a write transaction takes. They matter where
/// transactions run concurrently (PostgreSQL under READ COMMITTED) and fix one
/// lock order; an engine whose write transactions already exclude each other
/// (SQLite's `BEGIN IMMEDIATE`) writes none of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// The rows read, for update.
    Update,
    /// The rows read, against updates and deletes but not against inserts
    /// that reference them (the lock a child row's insert does not wait on).
    NoKeyUpdate,
    /// Only the rows of the table with this alias, for update.
    UpdateOf(&'static str),
    /// The rows read for update, skipping rows another transaction holds
    /// (work queues: concurrent workers claim different rows).
    UpdateSkipLocked,
}

/// One SQL engine.
#[async_trait]
pub trait Backend: std::fmt::Debug + Send + Sync + 'static {
    /// The engine's row.
    type Row: Row;
    /// Statements on the pool.
    type Pool: Exec<Row = Self::Row>;
    /// A write transaction.
    type Tx: Transaction<Row = Self::Row>;

    /// The engine's name (`"sqlite"`, `"postgres"`).
    const NAME: &'static str;

    /// The collation clause (with a leading space, or nothing) under which
    /// text compares by code point, as the indexes for prefix ranges are built.
    const CODE_POINT_ORDER: &'static str;

    /// A handle on the pool to run statements on (cheap: shares the pool).
    fn on_pool(&self) -> Self::Pool;

    /// Starts a write transaction. Concurrent ones either queue (SQLite takes
    /// the write lock first) or see each other's commits at each statement
    /// (PostgreSQL, READ COMMITTED, ordered by [`Lock`] clauses).
    async fn begin(&self) -> Result<Self::Tx, StoreError>;

    /// The clause appended to a `SELECT` to take `lock` (with a leading space),
    /// or nothing.
    fn lock(lock: Lock) -> String;

    /// Applies the engine's pending migrations. Idempotent.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Closes every pooled connection.
    async fn close(&self);
}
