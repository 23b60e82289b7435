//! The hasher service.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OnceCell, Semaphore};
use zeroize::Zeroizing;

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Iterations.
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

/// Largest Argon2 memory cost accepted in a stored hash (1 GiB): a planted hash
/// with a huge cost must not become a denial of service.
const MAX_STORED_MEMORY_KIB: u32 = 1024 * 1024;
/// Largest bcrypt cost accepted in a stored hash, for the same reason.
const MAX_BCRYPT_COST: u32 = 16;

/// Why hashing or verifying failed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The configured parameters are not valid Argon2 parameters.
    #[error("invalid Argon2 parameters")]
    InvalidParams,
    /// The stored hash is not a supported, sane hash.
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
    /// The stored hash is outdated (bcrypt, not Argon2id, other parameters) and
    /// should be replaced by a fresh hash of the same password.
    pub needs_rehash: bool,
}

struct Inner {
    params: Argon2Params,
    argon2: Argon2<'static>,
    permits: Semaphore,
    dummy: OnceCell<String>,
}

/// Hashes and verifies passwords on tokio's blocking pool, at most
/// `max_concurrent` at a time: a login storm queues (asynchronously, holding no
/// thread) instead of starving the async workers that serve everything else.
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
    /// A hasher with these parameters; `max_concurrent = 0` means one per core.
    pub fn new(params: Argon2Params, max_concurrent: usize) -> Result<Self, PasswordError> {
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
        };
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params),
                permits: Semaphore::new(permits),
                dummy: OnceCell::new(),
            }),
        })
    }

    /// The configured parameters.
    pub fn params(&self) -> &Argon2Params {
        &self.inner.params
    }

    /// Runs `work` on the blocking pool under a permit.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Inner) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Internal)?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|_| PasswordError::Internal)
    }

    /// A new Argon2id PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`)
    /// with a fresh random salt.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let password = Zeroizing::new(password.to_owned());
        self.run(move |inner| {
            let salt = SaltString::generate(&mut rand::rngs::OsRng);
            inner
                .argon2
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|_| PasswordError::InvalidParams)
        })
        .await?
    }

    /// Checks `password` against a stored Argon2 (any variant) or bcrypt
    /// (`$2a$`/`$2b$`/`$2y$`) hash. Unknown formats and absurd costs are
    /// `Malformed`, never a panic.
    pub async fn verify(
        &self,
        password: &str,
        stored: &str,
    ) -> Result<Verification, PasswordError> {
        let password = Zeroizing::new(password.to_owned());
        let stored = stored.to_owned();
        self.run(move |inner| verify_blocking(inner, &password, &stored))
            .await?
    }

    /// Does the work of verifying against a real hash with the current parameters
    /// and discards the result: the unknown-account path of a login costs what a
    /// wrong password costs.
    pub async fn verify_dummy(&self, password: &str) {
        let dummy = self
            .inner
            .dummy
            .get_or_try_init(|| self.hash("latchkey dummy password, never valid"))
            .await;
        if let Ok(dummy) = dummy {
            let _ = self.verify(password, &dummy.clone()).await;
        }
    }
}

fn verify_blocking(
    inner: &Inner,
    password: &str,
    stored: &str,
) -> Result<Verification, PasswordError> {
    if let Some(cost) = bcrypt_cost(stored) {
        if cost > MAX_BCRYPT_COST {
            return Err(PasswordError::Malformed);
        }
        let matches = bcrypt::verify(password, stored).map_err(|_| PasswordError::Malformed)?;
        return Ok(Verification {
            matches,
            needs_rehash: matches,
        });
    }
    let parsed = PasswordHash::new(stored).map_err(|_| PasswordError::Malformed)?;
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(PasswordError::Malformed);
    }
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|_| PasswordError::Malformed)?;
    let params = Params::try_from(&parsed).map_err(|_| PasswordError::Malformed)?;
    if params.m_cost() > MAX_STORED_MEMORY_KIB {
        return Err(PasswordError::Malformed);
    }
    let current = &inner.params;
    let outdated = algorithm != Algorithm::Argon2id
        || params.m_cost() != current.memory_kib
        || params.t_cost() != current.iterations
        || params.p_cost() != current.parallelism;
    // Verify with the stored hash's own algorithm and parameters.
    let verifier = Argon2::new(algorithm, Version::V0x13, params);
    let matches = verifier
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    Ok(Verification {
        matches,
        needs_rehash: matches && outdated,
    })
}

/// The cost of a `$2a$`/`$2b$`/`$2y$` bcrypt hash, if `stored` is one.
fn bcrypt_cost(stored: &str) -> Option<u32> {
    let rest = stored
        .strip_prefix("$2a$")
        .or_else(|| stored.strip_prefix("$2b$"))
        .or_else(|| stored.strip_prefix("$2y$"))?;
    rest.get(..2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> Argon2Params {
        Argon2Params {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let h = PasswordHasher::new(fast(), 2).unwrap();
        let hash = h.hash("correct horse battery staple").await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{hash}");
        assert_eq!(
            h.verify("correct horse battery staple", &hash)
                .await
                .unwrap(),
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        assert!(
            !h.verify("correct horse battery stapl", &hash)
                .await
                .unwrap()
                .matches
        );
        assert_ne!(
            hash,
            h.hash("correct horse battery staple").await.unwrap(),
            "salted"
        );
        for pw in ["", "é😀 mixed unicode password", &"x".repeat(128)] {
            let hash = h.hash(pw).await.unwrap();
            assert!(h.verify(pw, &hash).await.unwrap().matches);
        }
    }

    #[tokio::test]
    async fn default_params_are_owasp() {
        let h = PasswordHasher::new(Argon2Params::default(), 1).unwrap();
        let hash = h.hash("a long enough password").await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
    }

    #[tokio::test]
    async fn changed_params_ask_for_a_rehash() {
        let old = PasswordHasher::new(fast(), 1).unwrap();
        let hash = old.hash("password password").await.unwrap();
        let new = PasswordHasher::new(
            Argon2Params {
                memory_kib: 2048,
                ..fast()
            },
            1,
        )
        .unwrap();
        assert_eq!(
            new.verify("password password", &hash).await.unwrap(),
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
        assert!(!new.verify("wrong", &hash).await.unwrap().needs_rehash);
    }

    #[tokio::test]
    async fn bcrypt_imports_verify_and_ask_for_a_rehash() {
        let h = PasswordHasher::new(fast(), 1).unwrap();
        let b = bcrypt::hash("correct horse battery staple", 4).unwrap();
        for variant in [
            b.clone(),
            b.replacen("$2b$", "$2y$", 1),
            b.replacen("$2b$", "$2a$", 1),
        ] {
            let v = h
                .verify("correct horse battery staple", &variant)
                .await
                .unwrap();
            assert_eq!(
                v,
                Verification {
                    matches: true,
                    needs_rehash: true
                },
                "{variant}"
            );
            assert!(!h.verify("wrong", &variant).await.unwrap().matches);
        }
    }

    #[tokio::test]
    async fn hostile_stored_hashes_are_malformed_not_panics() {
        let h = PasswordHasher::new(fast(), 1).unwrap();
        let huge = "x".repeat(10_000);
        for stored in [
            "",
            "plaintext",
            "$argon2id$garbage",
            "$2b$99$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
            "$2b$31$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
            "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            huge.as_str(),
        ] {
            assert!(
                matches!(h.verify("pw", stored).await, Err(PasswordError::Malformed)),
                "{stored:.40}"
            );
        }
    }

    #[tokio::test]
    async fn the_semaphore_queues_instead_of_failing() {
        let h = PasswordHasher::new(fast(), 1).unwrap();
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let h = h.clone();
                tokio::spawn(async move { h.hash(&format!("password number {i}")).await })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().is_ok());
        }
        h.verify_dummy("anything").await;
        h.verify_dummy("anything again").await;
    }

    #[test]
    fn zero_means_one_permit_per_core_and_bad_params_are_refused() {
        assert!(PasswordHasher::new(fast(), 0).is_ok());
        assert!(matches!(
            PasswordHasher::new(
                Argon2Params {
                    memory_kib: 1,
                    ..fast()
                },
                1
            ),
            Err(PasswordError::InvalidParams)
        ));
    }
}
