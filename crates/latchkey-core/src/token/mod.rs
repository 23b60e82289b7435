//! Access tokens: JWTs (`typ: at+jwt`) signed with our own keys (EdDSA by
//! default, ES256 or RS256), published as a JWK set, verified strictly.
//!
//! - [`SigningKey`]: one key, its PKCS#8 DER (zeroized on drop) and its public JWK;
//!   `kid` is the RFC 7638 thumbprint.
//! - [`KeyRing`]: the current key (signs) and the previous keys still inside their
//!   verification window (verify only); [`KeyRing::jwks`] publishes all of them.
//! - [`ActiveKeys`]: the ring in use, swapped in place on rotation, with a memory
//!   of recently verified tokens so a token's signature is checked once, not on
//!   every request.
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
use std::time::Duration;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// How long a verified token is remembered (its claims are re-checked on each
/// use, so this only bounds memory and how long a replaced ring's verdicts live).
pub const VERIFIED_TTL: Duration = Duration::from_mins(1);

/// The key ring in use, replaceable while requests are served: after a rotation
/// new tokens are signed with the new key at once, and requests already holding
/// the old ring finish with it.
///
/// It also remembers tokens whose signature verified (keyed by the SHA-256 of
/// the whole token, so only the exact same bytes hit), for [`VERIFIED_TTL`].
/// A remembered token still has its issuer, audience, expiry and not-before
/// checked against `now` on every use; replacing the ring forgets them all.
/// Failed verifications are never remembered.
pub struct ActiveKeys {
    ring: RwLock<Arc<KeyRing>>,
    verified: moka::sync::Cache<[u8; 32], Arc<AccessClaims>>,
}

impl std::fmt::Debug for ActiveKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveKeys")
            .field("current_kid", &self.ring().current_kid())
            .finish_non_exhaustive()
    }
}

impl ActiveKeys {
    /// Starts with `ring`.
    pub fn new(ring: KeyRing) -> Self {
        Self {
            ring: RwLock::new(Arc::new(ring)),
            verified: moka::sync::Cache::builder()
                .time_to_live(VERIFIED_TTL)
                .max_capacity(100_000)
                .build(),
        }
    }

    /// The ring to use for one operation (a poisoned lock still yields the ring:
    /// replacing it cannot leave it half-written).
    pub fn ring(&self) -> Arc<KeyRing> {
        Arc::clone(&self.ring.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the ring (after a rotation or a retirement) and forgets every
    /// remembered verification.
    pub fn replace(&self, ring: KeyRing) {
        *self.ring.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
        self.verified.invalidate_all();
    }

    /// [`KeyRing::verify`], checking the signature only the first time a token
    /// is seen (see the type's documentation).
    pub fn verify(
        &self,
        token: &str,
        settings: &TokenSettings,
        now: OffsetDateTime,
    ) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.verified.get(&key) {
            ring::check_claims(&claims, settings, now)?;
            return Ok((*claims).clone());
        }
        let claims = self.ring().verify(token, settings, now)?;
        self.verified.insert(key, Arc::new(claims.clone()));
        Ok(claims)
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
