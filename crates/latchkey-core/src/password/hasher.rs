//! The hasher service: Argon2id hashing and verification on a bounded blocking pool.

use std::sync::Arc;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OnceCell, Semaphore};
use zeroize::Zeroizing;

use super::memory::BlockPool;
use super::stored::{check_stored, verify_stored, MAX_MEMORY_KIB};

/// Argon2id cost parameters, used for every new hash; a stored hash with other
/// parameters is reported as needing a re-hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB (at most 1 GiB).
    pub memory_kib: u32,
    /// Iterations (passes over the memory).
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// OWASP Password Storage Cheat Sheet: m = 19 MiB, t = 2, p = 1.
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Why hashing or verifying failed. Never carries a password or a hash.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The configured parameters are not valid Argon2 parameters (or ask for more
    /// than 1 GiB of memory).
    #[error("invalid Argon2 parameters")]
    InvalidParams,
    /// The stored hash is not a supported, well-formed hash, or its cost is beyond
    /// the accepted limits (bcrypt cost > 16, Argon2 memory > 1 GiB, absurd work).
    #[error("stored password hash is malformed or unsupported")]
    Malformed,
    /// The blocking pool failed (a panic in the hash function, runtime shutdown).
    #[error("password hashing task failed")]
    Internal,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password is right (decided by a constant-time comparison).
    pub matches: bool,
    /// Only set when `matches`: the stored hash is outdated (bcrypt, not Argon2id
    /// v19, other parameters) and should be replaced by a fresh hash of the same
    /// password.
    pub needs_rehash: bool,
}

struct Inner {
    params: Argon2Params,
    argon2: Argon2<'static>,
    permits: Arc<Semaphore>,
    /// Working memory reused between hashes (one buffer per permit).
    memory: BlockPool,
    dummy: OnceCell<String>,
}

/// Hashes and verifies passwords on tokio's blocking pool, at most
/// `max_concurrent` at a time: a login storm queues (asynchronously, holding no
/// thread) instead of starving the async workers that serve everything else. A
/// permit is held until the hashing itself ends, even if the caller gives up, so
/// cancelled requests cannot push the pool past its bound. Cheap to clone (shared
/// state); `Debug` shows only the parameters.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.inner.params)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher with these parameters; `max_concurrent = 0` means one per core
    /// (`std::thread::available_parallelism`). Refuses invalid parameters and
    /// memory above 1 GiB.
    pub fn new(params: Argon2Params, max_concurrent: usize) -> Result<Self, PasswordError> {
        if params.memory_kib > MAX_MEMORY_KIB {
            return Err(PasswordError::InvalidParams);
        }
        let argon_params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|_| PasswordError::InvalidParams)?;
        let permits = if max_concurrent == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        } else {
            max_concurrent
        }
        .min(Semaphore::MAX_PERMITS);
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                memory: BlockPool::new(permits, argon_params.block_count()),
                argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params),
                permits: Arc::new(Semaphore::new(permits)),
                dummy: OnceCell::new(),
            }),
        })
    }

    /// The configured parameters.
    pub fn params(&self) -> &Argon2Params {
        &self.inner.params
    }

    /// Whether `stored` (an imported hash) is one [`Self::verify`] accepts:
    /// Argon2 (any variant, within the work bounds) or bcrypt
    /// `$2a$`/`$2b$`/`$2y$` of cost at most 16 (a higher cost would make each
    /// sign-in a denial of service). Does no hashing work. The first
    /// successful sign-in re-hashes it to the configured Argon2id.
    pub fn check_importable(&self, stored: &str) -> Result<(), PasswordError> {
        check_stored(&self.inner.params, stored)
    }

    /// Runs `work` on the blocking pool under a permit that lives as long as the
    /// work (not as long as the caller's future).
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|_| PasswordError::Internal)?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let out = work(&inner);
            drop(permit);
            out
        })
        .await
        .map_err(|e| {
            tracing::error!(panicked = e.is_panic(), "password hashing task failed");
            PasswordError::Internal
        })
    }

    /// A new Argon2id PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`)
    /// of the NFKC form of `password`, with a fresh random salt from the OS. The
    /// copy of the password handed to the blocking pool is zeroized when dropped.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let password = super::normalize(password);
        self.run(move |inner| new_hash(inner, password.as_bytes()))
            .await?
    }

    /// Checks `password` against a stored Argon2 (any variant) or bcrypt
    /// (`$2a$`/`$2b$`/`$2y$`) hash, with a constant-time comparison. Unknown
    /// formats and absurd costs are `Malformed` before any hashing, never a panic.
    /// Argon2 hashes are ours and were made from the NFKC form; imported bcrypt
    /// hashes are checked against the password exactly as typed.
    pub async fn verify(
        &self,
        password: &str,
        stored: &str,
    ) -> Result<Verification, PasswordError> {
        let password = if stored.starts_with("$argon2") {
            super::normalize(password)
        } else {
            Zeroizing::new(password.to_owned())
        };
        let stored = stored.to_owned();
        self.run(move |inner| {
            verify_stored(&inner.params, &inner.memory, password.as_bytes(), &stored)
        })
        .await?
    }

    /// Does the work of a failed verification against a hash with the current
    /// parameters and discards the result: the unknown-account path of a login
    /// costs what a wrong password costs. The dummy hash is computed once, on
    /// first use.
    pub async fn verify_dummy(&self, password: &str) {
        let dummy = self
            .inner
            .dummy
            .get_or_try_init(|| self.hash("latchkey dummy password, never valid"))
            .await;
        match dummy {
            Ok(dummy) => {
                let _ = self.verify(password, &dummy.clone()).await;
            }
            Err(e) => tracing::error!(error = %e, "dummy password hash unavailable"),
        }
    }
}

/// The PHC string of a fresh Argon2id hash of `password` with the configured
/// parameters and a random 128-bit salt, computed in pooled memory.
fn new_hash(inner: &Inner, password: &[u8]) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt
        .as_salt()
        .decode_b64(&mut salt_bytes)
        .map_err(|_| PasswordError::InvalidParams)?;
    let len = inner
        .argon2
        .params()
        .output_len()
        .unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let mut out = zeroize::Zeroizing::new(vec![0u8; len]);
    inner
        .memory
        .hash_into(&inner.argon2, password, salt_raw, &mut out)
        .map_err(|_| PasswordError::InvalidParams)?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(inner.argon2.params())
            .map_err(|_| PasswordError::InvalidParams)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|_| PasswordError::InvalidParams)?),
    };
    Ok(phc.to_string())
}

#[cfg(test)]
#[path = "hasher_tests.rs"]
mod tests;
