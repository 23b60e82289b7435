//! `WebhookStore`: webhooks, their deliveries, and the delivery workers'
//! leased positions in the event table.

use async_trait::async_trait;
use latchkey_core::ports::{StoreError, WebhookStore};
use latchkey_core::webhooks::{
    ClaimedDelivery, DeadLetter, NewDelivery, NewWebhook, Subscriptions, Webhook,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::backend::{Backend, Exec, Lock, Transaction};
use crate::query::{placeholders, sql};
use crate::row::{Row, RowExt};
use crate::SqlStore;

const WEBHOOK_COLUMNS: &str = "id, url, events, description, secret_sealed, \
     previous_secret_sealed, previous_until, static_name, created_at, after_seq";

const DEAD_LETTER_COLUMNS: &str = "id, event_id, webhook_id, kind, attempts, last_error, failed_at";

fn webhook_from_row<R: Row>(row: &R) -> Result<Webhook, StoreError> {
    let previous: Option<Vec<u8>> = row.get("previous_secret_sealed")?;
    let until: Option<OffsetDateTime> = row.get("previous_until")?;
    Ok(Webhook {
        id: row.get("id")?,
        url: row.get("url")?,
        events: Subscriptions::from_stored(&row.get::<String>("events")?),
        description: row.get("description")?,
        secret_sealed: row.get("secret_sealed")?,
        previous: previous.zip(until),
        static_name: row.get("static_name")?,
        created_at: row.get("created_at")?,
        after_seq: row.get("after_seq")?,
    })
}

fn dead_letter_from_row<R: Row>(row: &R) -> Result<DeadLetter, StoreError> {
    Ok(DeadLetter {
        id: row.get("id")?,
        event_id: row.get("event_id")?,
        webhook_id: row.get("webhook_id")?,
        kind: row.get("kind")?,
        attempts: u32::try_from(row.get::<i32>("attempts")?).unwrap_or(0),
        last_error: row.get("last_error")?,
        failed_at: row.get("failed_at")?,
    })
}

/// Deletes webhook `id` with its deliveries, in `ex` (deliveries first: one
/// statement order on both engines, whatever SQLite's foreign-key setting).
async fn delete_with_deliveries<E: Exec>(ex: &mut E, id: Uuid) -> Result<(), StoreError> {
    ex.execute(sql("DELETE FROM webhook_deliveries WHERE webhook_id = $1").bind(id))
        .await?;
    ex.execute(sql("DELETE FROM webhooks WHERE id = $1").bind(id))
        .await?;
    Ok(())
}

/// The previous secret's two columns (sealed secret, until), both NULL when
/// there is none.
fn previous_columns(w: &NewWebhook) -> (Option<&[u8]>, Option<OffsetDateTime>) {
    match &w.previous {
        Some((sealed, until)) => (Some(sealed.as_slice()), Some(*until)),
        None => (None, None),
    }
}

/// Makes the position `name` at the chain head unless it exists: events
/// from before it are not delivered.
async fn insert_position<E: Exec>(ex: &mut E, name: &str) -> Result<(), StoreError> {
    ex.execute(
        sql(
            "INSERT INTO event_positions (name, seq) SELECT $1, seq FROM audit_chain WHERE id = 1 \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name),
    )
    .await?;
    Ok(())
}

/// Inserts `w` after the current chain head, in `ex`.
async fn insert_webhook<E: Exec>(ex: &mut E, w: &NewWebhook) -> Result<(), StoreError> {
    let (previous, until) = previous_columns(w);
    ex.execute(
        sql("INSERT INTO webhooks (id, url, events, description, secret_sealed, previous_secret_sealed, \
             previous_until, static_name, created_at, after_seq) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, seq FROM audit_chain WHERE id = 1")
        .bind(w.id)
        .bind(&w.url)
        .bind(w.events.stored())
        .bind(&w.description)
        .bind(&w.secret_sealed)
        .bind(previous)
        .bind(until)
        .bind(&w.static_name)
        .bind(w.created_at),
    )
    .await?;
    Ok(())
}

#[async_trait]
impl<B: Backend> WebhookStore for SqlStore<B> {
    async fn create_webhook(&self, webhook: &NewWebhook) -> Result<Webhook, StoreError> {
        let mut tx = self.begin().await?;
        insert_webhook(&mut tx, webhook).await?;
        let q = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1");
        let row = tx.fetch_one(sql(&q).bind(webhook.id)).await?;
        let created = webhook_from_row(&row)?;
        tx.commit().await?;
        Ok(created)
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        let q = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY created_at, id");
        let rows = self.pool().fetch_all(sql(&q)).await?;
        rows.iter().map(webhook_from_row).collect()
    }

    async fn delete_webhook(&self, id: Uuid) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let found = tx
            .fetch_optional(
                sql("SELECT id FROM webhooks WHERE id = $1 AND static_name IS NULL").bind(id),
            )
            .await?;
        if found.is_none() {
            return Ok(false);
        }
        delete_with_deliveries(&mut tx, id).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn rotate_webhook_secret(
        &self,
        id: Uuid,
        secret_sealed: &[u8],
        previous_until: OffsetDateTime,
    ) -> Result<Option<Webhook>, StoreError> {
        let q = format!(
            "UPDATE webhooks SET previous_secret_sealed = secret_sealed, previous_until = $2, \
             secret_sealed = $3 WHERE id = $1 AND static_name IS NULL RETURNING {WEBHOOK_COLUMNS}"
        );
        let row = self
            .pool()
            .fetch_optional(sql(&q).bind(id).bind(previous_until).bind(secret_sealed))
            .await?;
        row.as_ref().map(webhook_from_row).transpose()
    }

    async fn reseal_webhook_secrets(
        &self,
        id: Uuid,
        expected: (&[u8], Option<&[u8]>),
        sealed: (&[u8], Option<&[u8]>),
    ) -> Result<bool, StoreError> {
        let changed = self
            .pool()
            .execute(
                sql("UPDATE webhooks SET secret_sealed = $4, previous_secret_sealed = $5 WHERE id = $1 \
                     AND secret_sealed = $2 AND previous_secret_sealed IS NOT DISTINCT FROM $3")
                .bind(id)
                .bind(expected.0)
                .bind(expected.1)
                .bind(sealed.0)
                .bind(sealed.1),
            )
            .await?;
        Ok(changed == 1)
    }

    async fn sync_static_webhooks(&self, webhooks: &[NewWebhook]) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let rows = tx
            .fetch_all(sql("SELECT id FROM webhooks WHERE static_name IS NOT NULL"))
            .await?;
        let known: Vec<Uuid> = rows.iter().map(|r| r.get("id")).collect::<Result<_, _>>()?;
        for gone in known
            .iter()
            .filter(|id| !webhooks.iter().any(|w| w.id == **id))
        {
            delete_with_deliveries(&mut tx, *gone).await?;
        }
        for w in webhooks {
            if known.contains(&w.id) {
                let (previous, until) = previous_columns(w);
                tx.execute(
                    sql("UPDATE webhooks SET url = $2, events = $3, description = $4, secret_sealed = $5, \
                         previous_secret_sealed = $6, previous_until = $7, static_name = $8 WHERE id = $1")
                    .bind(w.id)
                    .bind(&w.url)
                    .bind(w.events.stored())
                    .bind(&w.description)
                    .bind(&w.secret_sealed)
                    .bind(previous)
                    .bind(until)
                    .bind(&w.static_name),
                )
                .await?;
            } else {
                insert_webhook(&mut tx, w).await?;
            }
        }
        tx.commit().await
    }

    async fn ensure_position(&self, name: &str) -> Result<(), StoreError> {
        insert_position(&mut self.pool(), name).await
    }

    async fn lease_position(
        &self,
        name: &str,
        holder: &str,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.begin().await?;
        insert_position(&mut tx, name).await?;
        let row = tx
            .fetch_optional(
                sql(
                    "UPDATE event_positions SET holder = $2, lease_until = $3 WHERE name = $1 \
                     AND (holder = $2 OR holder IS NULL OR lease_until <= $4) RETURNING seq",
                )
                .bind(name)
                .bind(holder)
                .bind(now + lease)
                .bind(now),
            )
            .await?;
        let seq = row.map(|r| r.get("seq")).transpose()?;
        tx.commit().await?;
        Ok(seq)
    }

    async fn release_positions(&self, holder: &str) -> Result<(), StoreError> {
        self.pool()
            .execute(
                sql("UPDATE event_positions SET holder = NULL, lease_until = NULL WHERE holder = $1")
                    .bind(holder),
            )
            .await?;
        Ok(())
    }

    async fn advance_position(
        &self,
        name: &str,
        holder: &str,
        from: i64,
        to: i64,
        deliveries: &[NewDelivery],
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let moved = tx
            .execute(
                sql("UPDATE event_positions SET seq = $4 WHERE name = $1 AND holder = $2 AND seq = $3")
                    .bind(name)
                    .bind(holder)
                    .bind(from)
                    .bind(to),
            )
            .await?;
        if moved != 1 {
            return Ok(false);
        }
        for d in deliveries {
            tx.execute(
                sql("INSERT INTO webhook_deliveries (id, webhook_id, event_id, kind, attempts, next_attempt_at, \
                     created_at) SELECT $1, $2, $3, $4, 0, $5, $5 FROM webhooks WHERE id = $2 \
                     ON CONFLICT (webhook_id, event_id) DO NOTHING")
                .bind(d.id)
                .bind(d.webhook_id)
                .bind(d.event_id)
                .bind(d.kind.as_str())
                .bind(d.created_at),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn claim_deliveries(
        &self,
        now: OffsetDateTime,
        lease: Duration,
        limit: u32,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        // A read first: most rounds find nothing due, and a write transaction
        // would take SQLite's write lock from the requests for nothing.
        let due = self
            .pool()
            .fetch_optional(
                sql("SELECT id FROM webhook_deliveries WHERE next_attempt_at <= $1 LIMIT 1")
                    .bind(now),
            )
            .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let q = format!(
            "SELECT id FROM webhook_deliveries WHERE next_attempt_at <= $1 \
             ORDER BY next_attempt_at LIMIT $2{}",
            B::lock(Lock::UpdateSkipLocked)
        );
        let rows = tx.fetch_all(sql(&q).bind(now).bind(limit)).await?;
        let ids: Vec<Uuid> = rows.iter().map(|r| r.get("id")).collect::<Result<_, _>>()?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let q = format!(
            "UPDATE webhook_deliveries SET next_attempt_at = $1, attempts = attempts + 1 \
             WHERE id IN ({}) RETURNING id, webhook_id, event_id, attempts",
            placeholders(2, ids.len())
        );
        let rows = tx
            .fetch_all(sql(&q).bind(now + lease).bind_all(&ids))
            .await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| {
                Ok(ClaimedDelivery {
                    id: r.get("id")?,
                    webhook_id: r.get("webhook_id")?,
                    event_id: r.get("event_id")?,
                    attempts: u32::try_from(r.get::<i32>("attempts")?).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn delivery_succeeded(&self, id: Uuid, now: OffsetDateTime) -> Result<(), StoreError> {
        self.pool()
            .execute(
                sql("UPDATE webhook_deliveries SET delivered_at = $2, next_attempt_at = NULL, last_error = NULL \
                     WHERE id = $1 AND delivered_at IS NULL")
                .bind(id)
                .bind(now),
            )
            .await?;
        Ok(())
    }

    async fn delivery_failed(
        &self,
        id: Uuid,
        next_attempt_at: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError> {
        self.pool()
            .execute(
                sql(
                    "UPDATE webhook_deliveries SET next_attempt_at = $2, last_error = $3 \
                     WHERE id = $1 AND delivered_at IS NULL AND failed_at IS NULL",
                )
                .bind(id)
                .bind(next_attempt_at)
                .bind(error),
            )
            .await?;
        Ok(())
    }

    async fn delivery_dead(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        error: &str,
    ) -> Result<(), StoreError> {
        self.pool()
            .execute(
                sql("UPDATE webhook_deliveries SET failed_at = $2, next_attempt_at = NULL, last_error = $3 \
                     WHERE id = $1 AND delivered_at IS NULL")
                .bind(id)
                .bind(now)
                .bind(error),
            )
            .await?;
        Ok(())
    }

    async fn dead_letters(
        &self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = if let Some(after) = after {
            let q = format!(
                "SELECT {DEAD_LETTER_COLUMNS} FROM webhook_deliveries WHERE failed_at IS NOT NULL \
                 AND id > $1 ORDER BY id LIMIT $2"
            );
            self.pool()
                .fetch_all(sql(&q).bind(after).bind(limit))
                .await?
        } else {
            let q = format!(
                "SELECT {DEAD_LETTER_COLUMNS} FROM webhook_deliveries WHERE failed_at IS NOT NULL \
                 ORDER BY id LIMIT $1"
            );
            self.pool().fetch_all(sql(&q).bind(limit)).await?
        };
        rows.iter().map(dead_letter_from_row).collect()
    }

    async fn retry_dead_letter(
        &self,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Option<DeadLetter>, StoreError> {
        let mut tx = self.begin().await?;
        let q = format!(
            "SELECT {DEAD_LETTER_COLUMNS} FROM webhook_deliveries WHERE id = $1 AND failed_at IS NOT NULL{}",
            B::lock(Lock::Update)
        );
        let Some(row) = tx.fetch_optional(sql(&q).bind(id)).await? else {
            return Ok(None);
        };
        let letter = dead_letter_from_row(&row)?;
        tx.execute(
            sql("UPDATE webhook_deliveries SET failed_at = NULL, attempts = 0, next_attempt_at = $2, \
                 last_error = NULL WHERE id = $1")
            .bind(id)
            .bind(now),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(letter))
    }

    async fn dead_letter_count(&self) -> Result<u64, StoreError> {
        let row = self
            .pool()
            .fetch_one(sql(
                "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE failed_at IS NOT NULL",
            ))
            .await?;
        Ok(u64::try_from(row.get::<i64>("n")?).unwrap_or(0))
    }
}
