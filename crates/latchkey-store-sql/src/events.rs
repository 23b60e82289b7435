//! `EventStore`, and the write transaction that chains the security events
//! recorded in it ([`Tx`]).
//!
//! Each event is written by one statement that is also the chain's guard:
//! `INSERT ... SELECT ... FROM audit_chain WHERE seq = $prev AND hash = $prev
//! [FOR UPDATE]`, with the place and hashes computed from the head this
//! process wrote last ([`ChainGuess`]). It inserts only when the head is
//! still that one, and a trigger (`security_events_chain_head`) moves the
//! head to the new event in the same statement. When another process or node
//! wrote meanwhile, it inserts nothing, and the writer reads the head (locked)
//! and writes again: the database, never the guess, decides each place. On
//! PostgreSQL the statement locks the head row, after every other lock of the
//! transaction (events are written at commit), so it adds no lock-order
//! cycle; SQLite's writers exclude each other already.

use async_trait::async_trait;
use latchkey_core::audit::chain::{self, Head, Link, Stored};
use latchkey_core::audit::live::LiveEvents;
use latchkey_core::audit::{EventKind, SecurityEvent};
use latchkey_core::ports::{EventFilter, EventStore, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::backend::{Backend, Exec, Lock, Transaction};
use crate::query::{placeholders, sql, Query};
use crate::row::{hash32, Row, RowExt};
use crate::SqlStore;

/// The event columns, as [`event_from_row`] reads them.
const EVENT_COLUMNS: &str =
    "id, user_id, kind, created_at, session_id, ip, user_agent, actor_id, details";

/// Events chained per statement batch while the store chains rows from before
/// the chain.
const LEGACY_BATCH: u32 = 1_000;

/// A write transaction of the shared SQL layer: the engine's, plus the
/// security events recorded in it ([`insert_event`]). They are chained and
/// written when it commits, as its last statements: the one-row chain head is
/// locked (PostgreSQL; SQLite's write transactions exclude each other
/// already) only for the commit itself, after every other lock the
/// transaction takes, so it adds no lock-order cycle. Dropped without
/// [`Transaction::commit`], it rolls back and its events are not written.
pub struct Tx<B: Backend> {
    inner: B::Tx,
    events: Vec<SecurityEvent>,
    chain: ChainGuess,
    live: Live,
}

impl<B: Backend> Tx<B> {
    /// A transaction of the SQL layer around `inner`.
    pub(crate) fn new(inner: B::Tx, chain: ChainGuess, live: Live) -> Self {
        Self {
            inner,
            events: Vec::new(),
            chain,
            live,
        }
    }
}

/// The listeners told of each commit of events, once the server set them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Live(std::sync::Arc<std::sync::OnceLock<LiveEvents>>);

impl Live {
    /// Tells the listeners that `events` are committed.
    fn committed(&self, events: &[SecurityEvent]) {
        if let Some(live) = self.0.get() {
            live.committed(events);
        }
    }
}

/// The chain head this process wrote last, shared by its transactions; `None`
/// before the first write, or after a write whose outcome is unknown.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChainGuess(std::sync::Arc<std::sync::Mutex<Option<Head>>>);

impl ChainGuess {
    fn get(&self) -> Option<Head> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, head: Option<Head>) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = head;
    }

    /// Remembers `head`, written and committed, unless a later one is known
    /// already (two transactions of this process finishing out of order).
    fn advance(&self, head: Head) {
        let mut guess = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guess.is_none_or(|known| known.seq < head.seq) {
            *guess = Some(head);
        }
    }
}

#[async_trait]
impl<B: Backend> Exec for Tx<B> {
    type Row = B::Row;
    async fn execute(&mut self, q: Query<'_>) -> Result<u64, StoreError> {
        self.inner.execute(q).await
    }
    async fn fetch_all(&mut self, q: Query<'_>) -> Result<Vec<B::Row>, StoreError> {
        self.inner.fetch_all(q).await
    }
    async fn fetch_optional(&mut self, q: Query<'_>) -> Result<Option<B::Row>, StoreError> {
        self.inner.fetch_optional(q).await
    }
}

#[async_trait]
impl<B: Backend> Transaction for Tx<B> {
    async fn commit(mut self) -> Result<(), StoreError> {
        let events = std::mem::take(&mut self.events);
        if events.is_empty() {
            return self.inner.commit().await;
        }
        let written = write_chained::<B, _>(&mut self.inner, self.chain.get(), &events).await;
        let committed = match written {
            Ok(head) => self.inner.commit().await.map(|()| head),
            Err(e) => Err(e),
        };
        match committed {
            Ok(head) => {
                self.chain.advance(head);
                self.live.committed(&events);
                Ok(())
            }
            Err(e) => {
                self.chain.set(None);
                Err(e)
            }
        }
    }
}

/// Writes `events` chained after the head, trying `guess` first (see the
/// module docs); returns the new head. Only the first insert can find the head
/// moved: from then on the writer holds it until the end of its transaction.
async fn write_chained<B: Backend, E: Exec>(
    ex: &mut E,
    guess: Option<Head>,
    events: &[SecurityEvent],
) -> Result<Head, StoreError> {
    let refs: Vec<&SecurityEvent> = events.iter().collect();
    let mut head = match guess {
        Some(head) => head,
        None => read_head::<B, _>(ex, true).await?,
    };
    for _ in 0..2 {
        let (links, next) = chain::seal(head, &refs);
        let mut previous = head;
        let mut moved = false;
        for (event, link) in events.iter().zip(&links) {
            if !insert_chained::<B, _>(ex, event, link, previous).await? {
                moved = true;
                break;
            }
            previous = link.head();
        }
        if !moved {
            return Ok(next);
        }
        head = read_head::<B, _>(ex, true).await?;
    }
    Err(StoreError::Internal(
        "the event chain head moved while this transaction held it".into(),
    ))
}

/// Records `event` in `tx`: written, chained, when `tx` commits.
pub(crate) fn insert_event<B: Backend>(tx: &mut Tx<B>, event: &SecurityEvent) {
    tx.events.push(event.clone());
}

/// Redacts every event about `user_id` (an account being deleted): its
/// personal fields are cleared and it is marked redacted; its place and
/// hashes stay, so the chain still verifies.
pub(crate) async fn redact_user_events<B: Backend>(
    tx: &mut Tx<B>,
    user_id: Uuid,
) -> Result<u64, StoreError> {
    tx.execute(
        sql(
            "UPDATE security_events SET user_id = NULL, session_id = NULL, ip = NULL, \
             user_agent = NULL, details = NULL, redacted = $2 WHERE user_id = $1",
        )
        .bind(user_id)
        .bind(true),
    )
    .await
}

async fn read_head<B: Backend, E: Exec>(ex: &mut E, lock: bool) -> Result<Head, StoreError> {
    let q = format!(
        "SELECT seq, hash FROM audit_chain WHERE id = 1{}",
        if lock {
            B::lock(Lock::Update)
        } else {
            String::new()
        }
    );
    head_from_row(&ex.fetch_one(sql(&q)).await?)
}

/// A place and its hash, from a row's `seq` and `hash`.
fn head_from_row<R: Row>(row: &R) -> Result<Head, StoreError> {
    Ok(Head {
        seq: row.get("seq")?,
        hash: stored_hash(row, "hash")?,
    })
}

/// A 32-byte hash column.
fn stored_hash<R: Row>(row: &R, column: &str) -> Result<chain::Hash, StoreError> {
    hash32(&row.get::<Vec<u8>>(column)?)
}

async fn set_head<E: Exec>(ex: &mut E, head: Head) -> Result<(), StoreError> {
    ex.execute(
        sql("UPDATE audit_chain SET seq = $1, hash = $2 WHERE id = 1")
            .bind(head.seq)
            .bind(&head.hash),
    )
    .await?;
    Ok(())
}

/// Inserts `e` at `link` if the chain head is still `previous` (the head row
/// is locked for the rest of the transaction on engines that lock rows, and a
/// trigger moves it to `link`); `false` when the head had moved and nothing was
/// written.
async fn insert_chained<B: Backend, E: Exec>(
    ex: &mut E,
    e: &SecurityEvent,
    link: &Link,
    previous: Head,
) -> Result<bool, StoreError> {
    let q = format!(
        "INSERT INTO security_events (id, user_id, kind, created_at, session_id, ip, user_agent, \
         actor_id, details, seq, content_hash, hash) \
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM audit_chain \
         WHERE id = 1 AND seq = $13 AND hash = $14{}",
        B::lock(Lock::Update)
    );
    let inserted = ex
        .execute(
            sql(&q)
                .bind(e.id)
                .bind(e.user_id)
                .bind(e.kind.as_str())
                .bind(e.created_at)
                .bind(e.session_id)
                .bind(&e.ip)
                .bind(&e.user_agent)
                .bind(e.actor_id)
                .bind(&e.details)
                .bind(link.seq)
                .bind(&link.content)
                .bind(&link.hash)
                .bind(previous.seq)
                .bind(&previous.hash),
        )
        .await?;
    Ok(inserted == 1)
}

/// An event as stored; `Internal` for a kind this build does not know (a
/// row written under the store, or by a newer release).
fn event_from_row<R: Row>(row: &R) -> Result<SecurityEvent, StoreError> {
    let kind: String = row.get("kind")?;
    Ok(SecurityEvent {
        id: row.get("id")?,
        user_id: row.get("user_id")?,
        kind: EventKind::parse(&kind)
            .ok_or_else(|| StoreError::Internal(format!("unknown event kind {kind:?}").into()))?,
        created_at: row.get("created_at")?,
        session_id: row.get("session_id")?,
        ip: row.get("ip")?,
        user_agent: row.get("user_agent")?,
        actor_id: row.get("actor_id")?,
        details: row.get("details")?,
    })
}

impl<B: Backend> SqlStore<B> {
    /// Chains the events stored before the chain existed (`seq` NULL), in
    /// time order, in one transaction, when the chain is still empty: once it
    /// has events, an unchained row is not history but a row written under
    /// the store, which the verifier reports instead.
    pub(crate) async fn chain_events_from_before(&self) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let mut head = read_head::<B, _>(&mut tx, true).await?;
        if head != Head::EMPTY {
            return Ok(0);
        }
        let mut chained = 0;
        loop {
            let q = format!(
                "SELECT {EVENT_COLUMNS} FROM security_events WHERE seq IS NULL \
                 ORDER BY created_at, id LIMIT $1"
            );
            let rows = tx.fetch_all(sql(&q).bind(LEGACY_BATCH)).await?;
            if rows.is_empty() {
                break;
            }
            let events = rows
                .iter()
                .map(event_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<&SecurityEvent> = events.iter().collect();
            let (links, next) = chain::seal(head, &refs);
            for (event, link) in events.iter().zip(&links) {
                tx.execute(
                    sql("UPDATE security_events SET seq = $1, content_hash = $2, hash = $3 WHERE id = $4")
                        .bind(link.seq)
                        .bind(&link.content)
                        .bind(&link.hash)
                        .bind(event.id),
                )
                .await?;
            }
            head = next;
            chained += events.len() as u64;
        }
        if chained > 0 {
            set_head(&mut tx, head).await?;
        }
        tx.commit().await?;
        Ok(chained)
    }
}

#[async_trait]
impl<B: Backend> EventStore for SqlStore<B> {
    async fn record_event(&self, e: &SecurityEvent) -> Result<(), StoreError> {
        // One statement on its own when the guess holds; a transaction that
        // reads the head first when it does not.
        if let Some(head) = self.chain.get() {
            let (links, next) = chain::seal(head, &[e]);
            match insert_chained::<B, _>(&mut self.pool(), e, &links[0], head).await {
                Ok(true) => {
                    self.chain.advance(next);
                    self.live.committed(std::slice::from_ref(e));
                    return Ok(());
                }
                Ok(false) => {}
                Err(err) => {
                    self.chain.set(None);
                    return Err(err);
                }
            }
        }
        let mut tx = self.begin().await?;
        tx.chain.set(None);
        insert_event(&mut tx, e);
        tx.commit().await
    }

    async fn events(
        &self,
        filter: &EventFilter,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<SecurityEvent>, StoreError> {
        // Only the conditions asked for: each is one an index can serve
        // (`id` for the order and the position, `(user_id, id)` for a user).
        let mut conditions = Vec::new();
        let mut next = 0;
        for (asked, condition) in [
            (before.is_some(), "id <"),
            (filter.user_id.is_some(), "user_id ="),
            (filter.since.is_some(), "created_at >="),
            (filter.until.is_some(), "created_at <"),
        ] {
            if asked {
                next += 1;
                conditions.push(format!("{condition} ${next}"));
            }
        }
        let kinds: Vec<&str> = filter.kinds.iter().flatten().map(|k| k.as_str()).collect();
        if filter.kinds.is_some() {
            if kinds.is_empty() {
                return Ok(Vec::new());
            }
            let first = next + 1;
            next += kinds.len();
            conditions.push(format!("kind IN ({})", placeholders(first, kinds.len())));
        }
        let limit_at = next + 1;
        let q = format!(
            "SELECT {EVENT_COLUMNS} FROM security_events{}{} ORDER BY id DESC LIMIT ${limit_at}",
            if conditions.is_empty() { "" } else { " WHERE " },
            conditions.join(" AND ")
        );
        let mut query = sql(&q);
        if let Some(before) = before {
            query = query.bind(before);
        }
        if let Some(user_id) = filter.user_id {
            query = query.bind(user_id);
        }
        if let Some(since) = filter.since {
            query = query.bind(since);
        }
        if let Some(until) = filter.until {
            query = query.bind(until);
        }
        let query = query.bind_all(&kinds).bind(limit);
        let rows = self.pool().fetch_all(query).await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn event(&self, id: Uuid) -> Result<Option<SecurityEvent>, StoreError> {
        let q = format!("SELECT {EVENT_COLUMNS} FROM security_events WHERE id = $1");
        let row = self.pool().fetch_optional(sql(&q).bind(id)).await?;
        row.as_ref().map(event_from_row).transpose()
    }

    async fn chain_head(&self) -> Result<Head, StoreError> {
        read_head::<B, _>(&mut self.pool(), false).await
    }

    async fn chained_events(&self, after: i64, limit: u32) -> Result<Vec<Stored>, StoreError> {
        let q = format!(
            "SELECT {EVENT_COLUMNS}, seq, content_hash, hash, redacted FROM security_events \
             WHERE seq > $1 ORDER BY seq LIMIT $2"
        );
        let rows = self
            .pool()
            .fetch_all(sql(&q).bind(after).bind(limit))
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Stored {
                    event: event_from_row(row)?,
                    link: Link {
                        seq: row.get("seq")?,
                        content: stored_hash(row, "content_hash")?,
                        hash: stored_hash(row, "hash")?,
                    },
                    redacted: row.get("redacted")?,
                })
            })
            .collect()
    }

    async fn chain_before(&self, at: OffsetDateTime) -> Result<Head, StoreError> {
        let row = self
            .pool()
            .fetch_optional(
                sql(
                    "SELECT seq, hash FROM security_events WHERE seq IS NOT NULL AND created_at < $1 \
                     ORDER BY seq DESC LIMIT 1",
                )
                .bind(at),
            )
            .await?;
        row.map_or(Ok(Head::EMPTY), |row| head_from_row(&row))
    }

    async fn unchained_events(&self) -> Result<u64, StoreError> {
        let row = self
            .pool()
            .fetch_one(sql(
                "SELECT COUNT(*) AS n FROM security_events WHERE seq IS NULL",
            ))
            .await?;
        Ok(u64::try_from(row.get::<i64>("n")?).unwrap_or(0))
    }

    async fn user_events_after(
        &self,
        user_id: Uuid,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, SecurityEvent)>, StoreError> {
        let q = format!(
            "SELECT {EVENT_COLUMNS}, seq FROM security_events WHERE user_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3"
        );
        let rows = self
            .pool()
            .fetch_all(sql(&q).bind(user_id).bind(after).bind(limit))
            .await?;
        rows.iter()
            .map(|row| Ok((row.get("seq")?, event_from_row(row)?)))
            .collect()
    }

    async fn user_event_place(&self, user_id: Uuid, id: Uuid) -> Result<Option<i64>, StoreError> {
        let row = self
            .pool()
            .fetch_optional(
                sql("SELECT seq FROM security_events WHERE id = $1 AND user_id = $2 AND seq IS NOT NULL")
                    .bind(id)
                    .bind(user_id),
            )
            .await?;
        row.map(|row| row.get("seq")).transpose()
    }

    fn notify_commits(&self, live: LiveEvents) {
        let _ = self.live.0.set(live);
    }
}
