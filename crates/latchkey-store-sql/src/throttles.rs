//! `ThrottleStore`.

use async_trait::async_trait;
use latchkey_core::ports::{StoreError, Throttle, ThrottleStore};
use time::OffsetDateTime;

use crate::backend::{Backend, Exec};
use crate::query::{placeholders, sql};
use crate::row::{Row, RowExt};
use crate::SqlStore;

const COLUMNS: &str = "failures, lock_count, locked_until, previous_attempt_at";

fn throttle_from_row<R: Row>(row: &R) -> Result<Throttle, StoreError> {
    let count = |name: &str| -> Result<u32, StoreError> {
        let n: i32 = row.get(name)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    };
    Ok(Throttle {
        failures: count("failures")?,
        lock_count: count("lock_count")?,
        locked_until: row.get("locked_until")?,
        previous_attempt_at: row.get("previous_attempt_at")?,
    })
}

#[async_trait]
impl<B: Backend> ThrottleStore for SqlStore<B> {
    async fn throttle(&self, key: &[u8; 32]) -> Result<Option<Throttle>, StoreError> {
        let q = format!("SELECT {COLUMNS} FROM login_throttles WHERE key = $1");
        let row = self.pool().fetch_optional(sql(&q).bind(key)).await?;
        row.as_ref().map(throttle_from_row).transpose()
    }

    async fn throttles(&self, keys: &[[u8; 32]]) -> Result<Vec<([u8; 32], Throttle)>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let q = format!(
            "SELECT key, {COLUMNS} FROM login_throttles WHERE key IN ({})",
            placeholders(1, keys.len())
        );
        let mut query = sql(&q);
        for key in keys {
            query = query.bind(key);
        }
        let rows = self.pool().fetch_all(query).await?;
        rows.iter()
            .map(|row| {
                let key: Vec<u8> = row.get("key")?;
                let key = <[u8; 32]>::try_from(key.as_slice()).map_err(|_| {
                    StoreError::Internal("login_throttles.key is not 32 bytes".into())
                })?;
                Ok((key, throttle_from_row(row)?))
            })
            .collect()
    }

    async fn reserve_throttle_attempt(
        &self,
        key: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Throttle, StoreError> {
        // One statement: of any number of concurrent attempts, each gets its
        // own count, and none is counted while a lock is in force.
        let q = format!(
            "INSERT INTO login_throttles (key, failures, updated_at) VALUES ($1, 1, $2) \
             ON CONFLICT (key) DO UPDATE SET failures = CASE \
               WHEN login_throttles.locked_until > $2 THEN login_throttles.failures \
               ELSE login_throttles.failures + 1 END, \
               previous_attempt_at = login_throttles.updated_at, updated_at = $2 \
             RETURNING {COLUMNS}"
        );
        let row = self.pool().fetch_one(sql(&q).bind(key).bind(now)).await?;
        throttle_from_row(&row)
    }

    async fn lock_throttle(
        &self,
        key: &[u8; 32],
        threshold: u32,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let changed = self
            .pool()
            .execute(
                sql("UPDATE login_throttles SET failures = 0, lock_count = lock_count + 1, locked_until = $1 \
                     WHERE key = $2 AND failures >= $3")
                .bind(until)
                .bind(key)
                .bind(i32::try_from(threshold).unwrap_or(i32::MAX)),
            )
            .await?;
        Ok(changed > 0)
    }

    async fn release_throttle_attempt(
        &self,
        key: &[u8; 32],
        previous_attempt_at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        // The earlier of the two times, NULL meaning "keep": written as CASE,
        // which both engines read alike (PostgreSQL's LEAST is SQLite's MIN).
        self.pool()
            .execute(
                sql("UPDATE login_throttles SET failures = failures - 1, \
                       updated_at = CASE WHEN $2 IS NOT NULL AND $2 < updated_at THEN $2 ELSE updated_at END \
                     WHERE key = $1 AND failures > 0")
                .bind(key)
                .bind(previous_attempt_at),
            )
            .await?;
        Ok(())
    }

    async fn clear_throttle(&self, key: &[u8; 32]) -> Result<bool, StoreError> {
        let changed = self
            .pool()
            .execute(sql("DELETE FROM login_throttles WHERE key = $1").bind(key))
            .await?;
        Ok(changed > 0)
    }
}
