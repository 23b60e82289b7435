//! Idempotency keys (API.md "Idempotency"): an unsafe request sent again with
//! the same `Idempotency-Key` gets the first answer again instead of running
//! twice.
//!
//! Guarantees:
//! - of any number of requests with one key (same principal, method and
//!   target), concurrent or not, at most one runs while its answer is kept;
//!   the store's primary key decides, never a read before a write;
//! - a repeat with the same body gets the kept status and body; a repeat with
//!   another body, or one arriving while the first still runs, is a
//!   [`Conflict`];
//! - records are keyed by an HMAC of (principal, method, target, key) under a
//!   server secret: neither the caller's address nor the key is stored in
//!   clear; the answer is sealed (XChaCha20-Poly1305, the record key as
//!   associated data: an answer copied to another record does not open);
//! - only answers of requests that ran are kept ([`keeps`]): a refusal of
//!   access (401, 403), a rate limit (429), a timeout (408) or a server error
//!   (5xx) releases the key, so the retry the client makes runs;
//! - a run that never finished (its node died) holds the key only until
//!   `abandon_after`; a record is gone after [`RETENTION`].

use std::net::IpAddr;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use time::Duration;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::clock::Clock;
use crate::ports::{ClaimOutcome, IdempotencyStore, NewIdempotencyClaim, StoreError};
use crate::seal::{Keyring, SealError};

/// How long the first answer under a key is kept (from the first request).
pub const RETENTION: Duration = Duration::hours(24);

/// Longest key accepted, in bytes (each a visible ASCII character).
pub const MAX_KEY_LEN: usize = 255;

/// Purpose of the keyring sealing kept answers.
pub const SEAL_PURPOSE: &str = "idempotency-responses";

/// Largest answer body kept; a larger answer is sent but not kept (the key
/// is released). latchkey's unsafe endpoints answer with a few hundred bytes.
pub const MAX_KEPT_BODY: usize = 256 * 1024;

/// How often a claim is retried when the key it met was released meanwhile.
const CLAIM_ATTEMPTS: usize = 3;

/// A well-formed `Idempotency-Key`: 1 to [`MAX_KEY_LEN`] visible ASCII
/// characters (`!` to `~`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

/// The header value is not a well-formed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Idempotency-Key must be 1 to 255 visible ASCII characters.")]
pub struct MalformedKey;

impl IdempotencyKey {
    /// The key of a header value, checked byte by byte.
    pub fn parse(raw: &[u8]) -> Result<Self, MalformedKey> {
        if raw.is_empty() || raw.len() > MAX_KEY_LEN || !raw.iter().all(u8::is_ascii_graphic) {
            return Err(MalformedKey);
        }
        // Visible ASCII is UTF-8.
        std::str::from_utf8(raw)
            .map(|s| Self(s.to_owned()))
            .map_err(|_| MalformedKey)
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whose key it is: keys of different principals never meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A signed-in user.
    User(Uuid),
    /// An anonymous caller, by client address.
    Client(IpAddr),
}

/// An unsafe request sent with a key.
#[derive(Debug, Clone, Copy)]
pub struct KeyedRequest<'a> {
    /// Whose it is.
    pub owner: Owner,
    /// `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: &'a str,
    /// Path and query, as sent.
    pub target: &'a str,
    /// The key.
    pub key: &'a IdempotencyKey,
    /// The body, as sent (its SHA-256 is compared with the first request's).
    pub body: &'a [u8],
}

/// A kept answer: what a replay sends back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeptResponse {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`, if the answer had one.
    pub content_type: Option<String>,
    /// `Location`, if the answer had one.
    pub location: Option<String>,
    /// The body (latchkey answers with JSON or nothing).
    pub body: String,
}

/// Why a repeat cannot be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The first request with this key still runs.
    InFlight,
    /// The first request with this key had another body.
    OtherBody,
}

/// The right to run under a key; give it back with [`Idempotency::finish`]
/// (or [`Idempotency::release`]).
#[derive(Debug, Clone)]
#[must_use = "a claim holds its key until finished or released"]
pub struct Claim {
    record_key: [u8; 32],
    claim: [u8; 16],
}

/// What to do with a keyed request.
#[derive(Debug)]
pub enum Begin {
    /// Run it; then finish the claim with its answer.
    Run(Claim),
    /// Send this answer again, without running.
    Replay(KeptResponse),
    /// Refuse it: `409 idempotency_conflict`.
    Conflict(Conflict),
}

/// Why the keyed path failed.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    /// The store did not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A kept answer does not open (sealed under a master key no longer
    /// configured, or tampered with).
    #[error("kept answer cannot be opened: {0}")]
    Seal(#[from] SealError),
}

/// Whether the answer of a request that reached its handler is kept: yes for
/// every 2xx, 3xx and 4xx but those that mean "did not run" (401, 403, 408,
/// 429); never a 5xx.
pub fn keeps(status: u16) -> bool {
    (200..500).contains(&status) && !matches!(status, 401 | 403 | 408 | 429)
}

/// Runs keyed requests at most once (see the module guarantees).
pub struct Idempotency {
    store: Arc<dyn IdempotencyStore>,
    seal: Keyring,
    mac_key: Zeroizing<Vec<u8>>,
    clock: Arc<dyn Clock>,
    abandon_after: Duration,
}

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotency")
            .field("abandon_after", &self.abandon_after)
            .finish_non_exhaustive()
    }
}

impl Idempotency {
    /// Keeps records in `store`, answers sealed with `seal` (built for
    /// [`SEAL_PURPOSE`]), record keys under `mac_key`; a run unfinished after
    /// `abandon_after` (longer than any request may run) is taken over.
    pub fn new(
        store: Arc<dyn IdempotencyStore>,
        seal: Keyring,
        mac_key: &[u8],
        clock: Arc<dyn Clock>,
        abandon_after: Duration,
    ) -> Self {
        Self {
            store,
            seal,
            mac_key: Zeroizing::new(mac_key.to_vec()),
            clock,
            abandon_after,
        }
    }

    fn record_key(&self, request: &KeyedRequest<'_>) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.mac_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(b"latchkey idempotency v1\0");
        let owner = match request.owner {
            Owner::User(id) => format!("user:{id}"),
            Owner::Client(ip) => format!("ip:{ip}"),
        };
        for part in [
            owner.as_bytes(),
            request.method.as_bytes(),
            request.target.as_bytes(),
            request.key.as_str().as_bytes(),
        ] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// Claims the key of `request`, or says what the earlier request left.
    pub async fn begin(&self, request: &KeyedRequest<'_>) -> Result<Begin, IdempotencyError> {
        let record_key = self.record_key(request);
        let request_hash: [u8; 32] = Sha256::digest(request.body).into();
        let mut claim = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut claim);
        let now = self.clock.now();
        let new = NewIdempotencyClaim {
            record_key,
            request_hash,
            claim,
            user_id: match request.owner {
                Owner::User(id) => Some(id),
                Owner::Client(_) => None,
            },
            now,
            abandoned_before: now - self.abandon_after,
            expired_before: now - RETENTION,
        };
        for _ in 0..CLAIM_ATTEMPTS {
            match self.store.claim_idempotency(&new).await? {
                ClaimOutcome::Claimed => return Ok(Begin::Run(Claim { record_key, claim })),
                ClaimOutcome::Released => {}
                ClaimOutcome::Taken(record) => {
                    if record.request_hash != request_hash {
                        return Ok(Begin::Conflict(Conflict::OtherBody));
                    }
                    let Some(sealed) = record.response else {
                        return Ok(Begin::Conflict(Conflict::InFlight));
                    };
                    let plain = self.seal.open(&sealed, &record_key)?;
                    let kept: KeptResponse =
                        serde_json::from_slice(&plain).map_err(|_| SealError::Format)?;
                    return Ok(Begin::Replay(kept));
                }
            }
        }
        // Released again and again: as good as in flight.
        Ok(Begin::Conflict(Conflict::InFlight))
    }

    /// Keeps `response` under `claim`'s key when [`keeps`] says so and its
    /// body is at most [`MAX_KEPT_BODY`]; else releases the key.
    pub async fn finish(&self, claim: Claim, response: &KeptResponse) -> Result<(), StoreError> {
        if !keeps(response.status) || response.body.len() > MAX_KEPT_BODY {
            return self.release(claim).await;
        }
        // Serializing a struct of strings and a number cannot fail.
        let plain = Zeroizing::new(serde_json::to_vec(response).unwrap_or_default());
        let sealed = self.seal.seal(&plain, &claim.record_key);
        self.store
            .complete_idempotency(&claim.record_key, &claim.claim, &sealed, self.clock.now())
            .await?;
        Ok(())
    }

    /// Gives the key up: the next request with it runs.
    pub async fn release(&self, claim: Claim) -> Result<(), StoreError> {
        self.store
            .release_idempotency(&claim.record_key, &claim.claim)
            .await
    }
}

#[cfg(test)]
mod tests;
