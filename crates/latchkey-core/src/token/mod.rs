//! Access tokens: JWTs (`typ: at+jwt`) signed with our own keys (EdDSA by
//! default, ES256 or RS256), published as a JWK set, verified strictly.
//!
//! - [`SigningKey`]: one key, its PKCS#8 DER (zeroized on drop) and its public JWK;
//!   `kid` is the RFC 7638 thumbprint.
//! - [`KeyRing`]: the current key (signs) and the previous keys still inside their
//!   verification window (verify only); [`KeyRing::jwks`] publishes all of them.
//! - [`ActiveKeys`]: the ring in use, swapped in place on rotation.
//!
//! Verification decides the algorithm from our keys, never from the token, and
//! reads no clock: `now` is passed in.

mod access;
mod jwk;
mod keys;
mod ring;

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod verify_tests;

pub use access::{
    new_claims, AccessClaims, TokenSettings, ACCESS_TOKEN_TYPE, DEFAULT_LEEWAY, DEFAULT_TTL,
    MAX_LEEWAY,
};
pub use jwk::thumbprint;
pub use keys::{Algorithm, SigningKey, UnknownAlgorithm};
pub use ring::{KeyRing, MAX_TOKEN_LEN};

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

    /// The ring to use for one operation (a poisoned lock still yields the ring:
    /// replacing it cannot leave it half-written).
    pub fn ring(&self) -> Arc<KeyRing> {
        Arc::clone(&self.0.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the ring (after a rotation or a retirement).
    pub fn replace(&self, ring: KeyRing) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
    }
}

/// Why a key or token operation failed. Verification failures are distinct for
/// logs and tests; the HTTP layer answers all of them with one `401`. No variant
/// carries key material or token contents.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not a well-formed JWT: too large, not three base64url parts, header not a
    /// JSON object, a `crit` header, or claims not of the access-token shape.
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
    /// A key could not be generated, parsed or used; says which step failed.
    #[error("key error: {0}")]
    Key(&'static str),
    /// A step that cannot fail on valid keys failed (a bug or a library change).
    #[error("internal token error: {0}")]
    Internal(&'static str),
}
