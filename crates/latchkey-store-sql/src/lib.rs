//! latchkey's store, written once for every SQL engine.
//!
//! Every query whose logic is the same on SQLite and PostgreSQL lives here,
//! with `$N` placeholders, in one module per port. An engine crate provides a
//! [`Backend`]: connecting, migrations, binding and decoding (a timestamp is a
//! `timestamptz` on one engine and unix microseconds on the other), the error
//! mapping, and the row-lock clauses ([`Lock`]). Shared code never asks which
//! engine it runs on; a difference goes through the trait or is written so
//! both engines read it the same way (`IN` lists instead of `ANY(array)`,
//! `CASE` instead of `LEAST`/`MIN`, `IS DISTINCT FROM`).

mod admin;
mod aftermath;
mod backend;
mod events;
mod idempotency;
mod mail;
mod maintenance;
mod mfa;
mod passkeys;
mod query;
mod roles;
mod row;
mod sessions;
mod signing_keys;
mod throttles;
mod users;
mod webhooks;

use async_trait::async_trait;
use latchkey_core::ports::{Store, StoreError};

pub use backend::{Backend, Exec, Lock, Transaction};
pub use query::{placeholders, sql, Arg, Query};
pub use row::{Column, Row, RowExt};

/// latchkey's store on the engine `B`: implements every store port.
#[derive(Debug, Clone)]
pub struct SqlStore<B: Backend> {
    backend: B,
    /// The chain head this process wrote last: a guess that saves reading it
    /// before each event (see [`events`]); the database decides.
    chain: events::ChainGuess,
    /// Told of every commit of events, once set ([`EventStore::notify_commits`]).
    live: events::Live,
}

impl<B: Backend> SqlStore<B> {
    /// The store on `backend`. Does not migrate: call [`Store::migrate`].
    pub fn new(backend: B) -> Self {
        Self {
            backend,
            chain: events::ChainGuess::default(),
            live: events::Live::default(),
        }
    }

    fn pool(&self) -> B::Pool {
        self.backend.on_pool()
    }

    /// Starts a write transaction of the SQL layer: the engine's, chaining
    /// the security events recorded in it when it commits ([`events::Tx`]).
    async fn begin(&self) -> Result<events::Tx<B>, StoreError> {
        Ok(events::Tx::new(
            self.backend.begin().await?,
            self.chain.clone(),
            self.live.clone(),
        ))
    }
}

/// The engine's own API (its pool, for tests and tools in this workspace).
impl<B: Backend> std::ops::Deref for SqlStore<B> {
    type Target = B;
    fn deref(&self) -> &B {
        &self.backend
    }
}

#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    async fn ping(&self) -> Result<(), StoreError> {
        self.pool().execute(sql("SELECT 1")).await?;
        Ok(())
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        self.backend.migrate().await?;
        self.chain_events_from_before().await?;
        Ok(())
    }

    async fn close(&self) {
        self.backend.close().await;
    }

    fn backend(&self) -> &'static str {
        B::NAME
    }
}
