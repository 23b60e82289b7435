//! Idempotency-Key records: which unsafe request ran under a key, and the
//! answer it gave.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;

/// A request asking to run under a key.
#[derive(Debug, Clone)]
pub struct NewIdempotencyClaim {
    /// HMAC of (principal, method, target, key): the record's identity.
    pub record_key: [u8; 32],
    /// SHA-256 of the request body.
    pub request_hash: [u8; 32],
    /// Random id of this run (needed to complete or release it).
    pub claim: [u8; 16],
    /// The signed-in caller, if any (their records go with their account).
    pub user_id: Option<Uuid>,
    /// When the request arrived.
    pub now: OffsetDateTime,
    /// A run started at or before this that never finished is abandoned (its
    /// node died): this request takes it over.
    pub abandoned_before: OffsetDateTime,
    /// A record created at or before this is past retention: this request
    /// replaces it, whatever it holds.
    pub expired_before: OffsetDateTime,
}

/// What is recorded under a key another request holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// SHA-256 of the body of the request that holds the key.
    pub request_hash: [u8; 32],
    /// The sealed answer, once that request finished; `None` while it runs.
    pub response: Option<Vec<u8>>,
}

/// The outcome of [`IdempotencyStore::claim_idempotency`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This request holds the key and runs.
    Claimed,
    /// Another request holds it (running or finished).
    Taken(IdempotencyRecord),
    /// Another request held it a moment ago and released it since: ask again.
    Released,
}

/// Idempotency-Key records. Of any number of concurrent claims of one key,
/// exactly one is [`ClaimOutcome::Claimed`]: the insert and the primary key
/// decide, never a read before a write.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Records `claim` unless the key is held by a run that is neither
    /// abandoned nor expired.
    async fn claim_idempotency(
        &self,
        claim: &NewIdempotencyClaim,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Stores the sealed answer of the run `claim` of `record_key`; `false`
    /// when that run no longer holds the key (taken over, or its user deleted).
    async fn complete_idempotency(
        &self,
        record_key: &[u8; 32],
        claim: &[u8; 16],
        response: &[u8],
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Gives the key up (the run kept no answer): the next request with it
    /// runs. Does nothing when `claim` no longer holds it.
    async fn release_idempotency(
        &self,
        record_key: &[u8; 32],
        claim: &[u8; 16],
    ) -> Result<(), StoreError>;
}
