//! `IdempotencyStore`.

use async_trait::async_trait;
use latchkey_core::ports::{
    ClaimOutcome, IdempotencyRecord, IdempotencyStore, NewIdempotencyClaim, StoreError,
};
use time::OffsetDateTime;

use crate::backend::{Backend, Exec};
use crate::query::sql;
use crate::row::RowExt;
use crate::SqlStore;

#[async_trait]
impl<B: Backend> IdempotencyStore for SqlStore<B> {
    async fn claim_idempotency(&self, c: &NewIdempotencyClaim) -> Result<ClaimOutcome, StoreError> {
        // One statement: the primary key makes every concurrent duplicate
        // wait for the first insert and then fall into the conflict branch,
        // which replaces the row only when it is abandoned or expired.
        let changed = self
            .pool()
            .execute(
                sql("INSERT INTO idempotency_keys \
                       (record_key, request_hash, claim, user_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (record_key) DO UPDATE SET \
                       request_hash = excluded.request_hash, claim = excluded.claim, \
                       user_id = excluded.user_id, response = NULL, \
                       created_at = excluded.created_at, completed_at = NULL \
                     WHERE (idempotency_keys.completed_at IS NULL \
                            AND idempotency_keys.created_at <= $6) \
                        OR idempotency_keys.created_at <= $7")
                .bind(&c.record_key)
                .bind(&c.request_hash[..])
                .bind(&c.claim[..])
                .bind(c.user_id)
                .bind(c.now)
                .bind(c.abandoned_before)
                .bind(c.expired_before),
            )
            .await?;
        if changed > 0 {
            return Ok(ClaimOutcome::Claimed);
        }
        let row = self
            .pool()
            .fetch_optional(
                sql("SELECT request_hash, response FROM idempotency_keys WHERE record_key = $1")
                    .bind(&c.record_key),
            )
            .await?;
        let Some(row) = row else {
            return Ok(ClaimOutcome::Released);
        };
        let hash: Vec<u8> = row.get("request_hash")?;
        let request_hash = <[u8; 32]>::try_from(hash.as_slice())
            .map_err(|_| StoreError::Internal("idempotency request hash is not 32 bytes".into()))?;
        Ok(ClaimOutcome::Taken(IdempotencyRecord {
            request_hash,
            response: row.get("response")?,
        }))
    }

    async fn complete_idempotency(
        &self,
        record_key: &[u8; 32],
        claim: &[u8; 16],
        response: &[u8],
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let changed = self
            .pool()
            .execute(
                sql(
                    "UPDATE idempotency_keys SET response = $1, completed_at = $2 \
                     WHERE record_key = $3 AND claim = $4 AND completed_at IS NULL",
                )
                .bind(response)
                .bind(now)
                .bind(record_key)
                .bind(&claim[..]),
            )
            .await?;
        Ok(changed > 0)
    }

    async fn release_idempotency(
        &self,
        record_key: &[u8; 32],
        claim: &[u8; 16],
    ) -> Result<(), StoreError> {
        self.pool()
            .execute(
                sql("DELETE FROM idempotency_keys \
                     WHERE record_key = $1 AND claim = $2 AND completed_at IS NULL")
                .bind(record_key)
                .bind(&claim[..]),
            )
            .await?;
        Ok(())
    }
}
