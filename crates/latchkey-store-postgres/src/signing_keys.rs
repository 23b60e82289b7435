//! `SigningKeyStore` on PostgreSQL.

use async_trait::async_trait;
use latchkey_core::ports::{SigningKeyStore, StoreError, StoredSigningKey};
use sqlx::Row;

use crate::{map_error, PostgresStore};

#[async_trait]
impl SigningKeyStore for PostgresStore {
    async fn signing_keys(&self, algorithm: &str) -> Result<Vec<StoredSigningKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, algorithm, sealed_key, created_at, activates_at FROM signing_keys WHERE algorithm = $1 \
             ORDER BY created_at, kid",
        )
        .bind(algorithm)
        .fetch_all(self.pool())
        .await
        .map_err(map_error)?;
        rows.iter()
            .map(|row| {
                Ok(StoredSigningKey {
                    kid: row.try_get("kid").map_err(map_error)?,
                    algorithm: row.try_get("algorithm").map_err(map_error)?,
                    sealed_key: row.try_get("sealed_key").map_err(map_error)?,
                    created_at: row.try_get("created_at").map_err(map_error)?,
                    activates_at: row.try_get("activates_at").map_err(map_error)?,
                })
            })
            .collect()
    }

    async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, sealed_key, created_at, activates_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&key.kid)
        .bind(&key.algorithm)
        .bind(&key.sealed_key)
        .bind(key.created_at)
        .bind(key.activates_at)
        .execute(self.pool())
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
            .bind(kid)
            .execute(self.pool())
            .await
            .map_err(map_error)?;
        Ok(done.rows_affected() > 0)
    }

    async fn reseal_signing_key(
        &self,
        kid: &str,
        old: &[u8],
        sealed: &[u8],
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET sealed_key = $1 WHERE kid = $2 AND sealed_key = $3",
        )
        .bind(sealed)
        .bind(kid)
        .bind(old)
        .execute(self.pool())
        .await
        .map_err(map_error)?;
        Ok(done.rows_affected() == 1)
    }
}
