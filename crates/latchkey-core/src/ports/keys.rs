//! Signing keys kept in the database.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;

/// A signing key as stored: the private key sealed with the master key
/// ([`crate::seal`]), never in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    /// RFC 7638 thumbprint (also the associated data of the ciphertext).
    pub kid: String,
    /// `EdDSA`, `ES256` or `RS256`.
    pub algorithm: String,
    /// The sealed PKCS#8 DER.
    pub sealed_key: Vec<u8>,
    /// When it was created (and published in the JWKS).
    pub created_at: OffsetDateTime,
    /// When it starts signing: of the keys active at a time, the newest
    /// created is current.
    pub activates_at: OffsetDateTime,
}

impl std::fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .finish_non_exhaustive()
    }
}

/// Signing keys kept in the database (production), shared by every node.
#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Keys of `algorithm`, oldest first (by creation time, then kid).
    async fn signing_keys(&self, algorithm: &str) -> Result<Vec<StoredSigningKey>, StoreError>;

    /// Adds a key; `Conflict` if its kid exists.
    async fn insert_signing_key(&self, key: &StoredSigningKey) -> Result<(), StoreError>;

    /// Removes a key (retired keys, once no token they signed can be valid);
    /// returns whether it existed.
    async fn delete_signing_key(&self, kid: &str) -> Result<bool, StoreError>;

    /// Replaces the sealed private key of `kid` if it is still `old` (key
    /// re-encryption); whether it was.
    async fn reseal_signing_key(
        &self,
        kid: &str,
        old: &[u8],
        sealed: &[u8],
    ) -> Result<bool, StoreError>;
}
