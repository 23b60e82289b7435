//! `SigningKeyStore` on SQLite.

use async_trait::async_trait;
use latchkey_core::ports::{SigningKeyStore, StoreError, StoredSigningKey};
use sqlx::Row;

use crate::time_codec::{from_micros, to_micros};
use crate::{map_error, SqliteStore};

#[async_trait]
impl SigningKeyStore for SqliteStore {
    async fn signing_keys(&self, algorithm: &str) -> Result<Vec<StoredSigningKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, algorithm, sealed_key, created_at, activates_at FROM signing_keys WHERE algorithm = ? \
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
                    created_at: from_micros(row.try_get("created_at").map_err(map_error)?)?,
                    activates_at: from_micros(row.try_get("activates_at").map_err(map_error)?)?,
                })
            })
            .collect()
    }

    async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, sealed_key, created_at, activates_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&key.kid)
        .bind(&key.algorithm)
        .bind(&key.sealed_key)
        .bind(to_micros(key.created_at))
        .bind(to_micros(key.activates_at))
        .execute(self.pool())
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM signing_keys WHERE kid = ?")
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
        let done =
            sqlx::query("UPDATE signing_keys SET sealed_key = ? WHERE kid = ? AND sealed_key = ?")
                .bind(sealed)
                .bind(kid)
                .bind(old)
                .execute(self.pool())
                .await
                .map_err(map_error)?;
        Ok(done.rows_affected() == 1)
    }
}
