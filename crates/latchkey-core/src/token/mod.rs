//! Access tokens: JWTs (`typ: at+jwt`) signed with our own keys (EdDSA by
//! default, ES256 or RS256), published as a JWK set, verified strictly.

mod access;
mod keys;

#[cfg(test)]
mod tests;

pub use access::{new_claims, AccessClaims, KeyRing, TokenSettings};
pub use keys::{thumbprint, Algorithm, SigningKey};

use std::sync::{Arc, PoisonError, RwLock};

/// The key ring in use, replaceable while requests are served: after a rotation
/// new tokens are signed with the new key at once, and requests already holding
/// the old ring finish with it.
#[derive(Debug)]
pub struct ActiveKeys(RwLock<Arc<KeyRing>>);

impl ActiveKeys {
    /// Starts with `ring`.
    pub fn new(ring: KeyRing) -> Self {
        Self(RwLock::new(Arc::new(ring)))
    }

    /// The ring to use for one operation.
    pub fn ring(&self) -> Arc<KeyRing> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the ring (after a rotation or a retirement).
    pub fn replace(&self, ring: KeyRing) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
    }
}

/// Why a key or token operation failed. Verification failures are distinct for
/// logs and tests; the HTTP layer answers all of them with one `401`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not a well-formed JWT (or too large).
    #[error("malformed token")]
    Malformed,
    /// `kid` missing or not one of our keys.
    #[error("unknown key")]
    UnknownKey,
    /// `alg` is not the algorithm of our keys (`none`, HMAC, another family).
    #[error("wrong algorithm")]
    WrongAlgorithm,
    /// `typ` is not `at+jwt`.
    #[error("wrong token type")]
    WrongType,
    /// The signature does not verify with our key.
    #[error("bad signature")]
    BadSignature,
    /// `exp` passed (beyond the leeway).
    #[error("expired")]
    Expired,
    /// `nbf` in the future (beyond the leeway).
    #[error("not yet valid")]
    NotYetValid,
    /// `iss` is not ours.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` is not ours.
    #[error("wrong audience")]
    WrongAudience,
    /// A key could not be generated or parsed.
    #[error("key error")]
    Key,
}
