//! `SigningKeyStore`.

use async_trait::async_trait;
use latchkey_core::ports::{SigningKeyStore, StoreError, StoredSigningKey};

use crate::backend::{Backend, Exec};
use crate::query::sql;
use crate::row::RowExt;
use crate::SqlStore;

#[async_trait]
impl<B: Backend> SigningKeyStore for SqlStore<B> {
    async fn signing_keys(&self, algorithm: &str) -> Result<Vec<StoredSigningKey>, StoreError> {
        let rows = self
            .pool()
            .fetch_all(
                sql("SELECT kid, algorithm, sealed_key, created_at, activates_at FROM signing_keys \
                     WHERE algorithm = $1 ORDER BY created_at, kid")
                .bind(algorithm),
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredSigningKey {
                    kid: row.get("kid")?,
                    algorithm: row.get("algorithm")?,
                    sealed_key: row.get("sealed_key")?,
                    created_at: row.get("created_at")?,
                    activates_at: row.get("activates_at")?,
                })
            })
            .collect()
    }

    async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<(), StoreError> {
        self.pool()
            .execute(
                sql("INSERT INTO signing_keys (kid, algorithm, sealed_key, created_at, activates_at) \
                     VALUES ($1, $2, $3, $4, $5)")
                .bind(&key.kid)
                .bind(&key.algorithm)
                .bind(&key.sealed_key)
                .bind(key.created_at)
                .bind(key.activates_at),
            )
            .await?;
        Ok(())
    }

    async fn delete_signing_key(&self, kid: &str) -> Result<bool, StoreError> {
        let changed = self
            .pool()
            .execute(sql("DELETE FROM signing_keys WHERE kid = $1").bind(kid))
            .await?;
        Ok(changed > 0)
    }

    async fn reseal_signing_key(
        &self,
        kid: &str,
        old: &[u8],
        sealed: &[u8],
    ) -> Result<bool, StoreError> {
        let changed = self
            .pool()
            .execute(
                sql("UPDATE signing_keys SET sealed_key = $1 WHERE kid = $2 AND sealed_key = $3")
                    .bind(sealed)
                    .bind(kid)
                    .bind(old),
            )
            .await?;
        Ok(changed == 1)
    }
}
