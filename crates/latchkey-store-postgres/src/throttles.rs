//! `ThrottleStore` on PostgreSQL.

use async_trait::async_trait;
use latchkey_core::ports::{StoreError, Throttle, ThrottleStore};
use sqlx::postgres::PgRow;
use sqlx::Row;
use time::OffsetDateTime;

use crate::{map_error, PostgresStore};

fn throttle_from_row(row: &PgRow) -> Result<Throttle, StoreError> {
    let count = |name: &str| -> Result<u32, StoreError> {
        let n: i32 = row.try_get(name).map_err(map_error)?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    };
    Ok(Throttle {
        failures: count("failures")?,
        lock_count: count("lock_count")?,
        locked_until: row.try_get("locked_until").map_err(map_error)?,
        previous_attempt_at: row.try_get("previous_attempt_at").map_err(map_error)?,
    })
}

#[async_trait]
impl ThrottleStore for PostgresStore {
    async fn throttle(&self, key: &[u8; 32]) -> Result<Option<Throttle>, StoreError> {
        let row = sqlx::query(
            "SELECT failures, lock_count, locked_until, previous_attempt_at FROM login_throttles WHERE key = $1",
        )
        .bind(&key[..])
        .fetch_optional(self.pool())
        .await
        .map_err(map_error)?;
        row.as_ref().map(throttle_from_row).transpose()
    }

    async fn reserve_throttle_attempt(
        &self,
        key: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Throttle, StoreError> {
        // One statement: of any number of concurrent attempts, each gets its
        // own count, and none is counted while a lock is in force.
        let row = sqlx::query(
            "INSERT INTO login_throttles (key, failures, updated_at) VALUES ($1, 1, $2) \
             ON CONFLICT (key) DO UPDATE SET failures = CASE \
               WHEN login_throttles.locked_until > $2 THEN login_throttles.failures \
               ELSE login_throttles.failures + 1 END, \
               previous_attempt_at = login_throttles.updated_at, updated_at = $2 \
             RETURNING failures, lock_count, locked_until, previous_attempt_at",
        )
        .bind(&key[..])
        .bind(now)
        .fetch_one(self.pool())
        .await
        .map_err(map_error)?;
        throttle_from_row(&row)
    }

    async fn lock_throttle(
        &self,
        key: &[u8; 32],
        threshold: u32,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE login_throttles SET failures = 0, lock_count = lock_count + 1, locked_until = $1 \
             WHERE key = $2 AND failures >= $3",
        )
        .bind(until)
        .bind(&key[..])
        .bind(i32::try_from(threshold).unwrap_or(i32::MAX))
        .execute(self.pool())
        .await
        .map_err(map_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn release_throttle_attempt(
        &self,
        key: &[u8; 32],
        previous_attempt_at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE login_throttles SET failures = failures - 1, \
               updated_at = LEAST(updated_at, $2) \
             WHERE key = $1 AND failures > 0",
        )
        .bind(&key[..])
        .bind(previous_attempt_at)
        .execute(self.pool())
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn clear_throttle(&self, key: &[u8; 32]) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM login_throttles WHERE key = $1")
            .bind(&key[..])
            .execute(self.pool())
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected() > 0)
    }
}
