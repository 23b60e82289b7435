//! Refresh tokens: `lk_rt_` + 43 base64url characters of 256-bit randomness,
//! stored only as their SHA-256 hash.

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;
use zeroize::Zeroizing;

/// Prefix of every refresh token (lets secret scanners recognise leaked ones).
pub const REFRESH_TOKEN_PREFIX: &str = "lk_rt_";

/// A refresh token to store: the hash only; the plaintext goes to the client once.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// Row id.
    pub id: Uuid,
    /// The session (= family) it belongs to.
    pub session_id: Uuid,
    /// SHA-256 of the token string.
    pub token_hash: [u8; 32],
    /// Issue time.
    pub created_at: OffsetDateTime,
    /// After this the token is refused.
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshToken")
            .field("id", &self.id)
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

/// A fresh token string (returned to the client) and its stored form.
pub fn new_refresh_token(
    session_id: Uuid,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> (Zeroizing<String>, RefreshToken) {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    let text = Zeroizing::new(format!(
        "{REFRESH_TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref())
    ));
    let stored = RefreshToken {
        id: Uuid::now_v7(),
        session_id,
        token_hash: hash_refresh_token(&text),
        created_at,
        expires_at,
    };
    (text, stored)
}

/// The stored form of a presented token. Lookups go by this hash, so the
/// plaintext is never compared (nor stored) at all.
pub fn hash_refresh_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether a presented string has the shape of a refresh token (cheap pre-check
/// before any database work).
pub fn looks_like_refresh_token(token: &str) -> bool {
    token.len() == REFRESH_TOKEN_PREFIX.len() + 43
        && token.starts_with(REFRESH_TOKEN_PREFIX)
        && token[REFRESH_TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn tokens_have_the_documented_shape_and_are_unique() {
        let now = datetime!(2026-01-01 00:00 UTC);
        let (a, stored) = new_refresh_token(Uuid::now_v7(), now, now);
        let (b, _) = new_refresh_token(Uuid::now_v7(), now, now);
        assert!(looks_like_refresh_token(&a), "{}", a.as_str());
        assert_eq!(a.len(), 49);
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(stored.token_hash, hash_refresh_token(&a));
        assert!(!format!("{stored:?}").contains(&a[6..]));
    }

    #[test]
    fn malformed_tokens_are_recognised() {
        for bad in [
            "",
            "lk_rt_",
            "lk_rt_short",
            &format!("lk_at_{}", "a".repeat(43)),
            &format!("lk_rt_{}", "a".repeat(42) + "!"),
        ] {
            assert!(!looks_like_refresh_token(bad), "{bad}");
        }
    }
}
