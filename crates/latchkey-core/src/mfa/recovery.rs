//! Recovery codes: ten single-use codes of 60 random bits each, shown once and
//! stored only as a keyed hash.
//!
//! The hash is HMAC-SHA256 under a server key (not in the database) over the
//! user id and the normalized code: a stolen database alone does not allow an
//! offline search, and a code of one user is worthless for another.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use uuid::Uuid;
use zeroize::Zeroizing;

/// Codes per set.
pub const COUNT: usize = 10;
/// Characters per code (base32: 5 bits each, so 60 bits).
const CHARS: usize = 12;
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Hashes recovery codes under the server's key.
#[derive(Clone)]
pub struct RecoveryHasher {
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for RecoveryHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryHasher").finish_non_exhaustive()
    }
}

impl RecoveryHasher {
    /// A hasher keyed with `key` (the server's HMAC key).
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: Zeroizing::new(key.to_vec()),
        }
    }

    /// The stored form of `code` (as typed) for `user_id`; `None` when it cannot
    /// be a recovery code (wrong length or characters).
    pub fn hash(&self, user_id: Uuid, code: &str) -> Option<[u8; 32]> {
        let normalized = normalize(code)?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(b"latchkey recovery code v1\0");
        mac.update(user_id.as_bytes());
        mac.update(normalized.as_bytes());
        Some(mac.finalize().into_bytes().into())
    }

    /// A new set: the codes to show once, and their hashes to store.
    pub fn generate(&self, user_id: Uuid) -> (Vec<Zeroizing<String>>, Vec<[u8; 32]>) {
        let mut codes = Vec::with_capacity(COUNT);
        let mut hashes = Vec::with_capacity(COUNT);
        for _ in 0..COUNT {
            let mut bytes = Zeroizing::new([0u8; CHARS]);
            rand::rngs::OsRng.fill_bytes(bytes.as_mut());
            let raw: String = bytes
                .iter()
                .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
                .collect();
            let shown = Zeroizing::new(format!("{}-{}-{}", &raw[..4], &raw[4..8], &raw[8..]));
            if let Some(hash) = self.hash(user_id, &shown) {
                hashes.push(hash);
                codes.push(shown);
            }
        }
        (codes, hashes)
    }
}

/// Lower case without dashes and spaces; `None` unless 12 base32 characters.
fn normalize(code: &str) -> Option<Zeroizing<String>> {
    let text = Zeroizing::new(
        code.chars()
            .filter(|c| !matches!(c, '-' | ' '))
            .map(|c| c.to_ascii_lowercase())
            .collect::<String>(),
    );
    (text.len() == CHARS && text.bytes().all(|b| ALPHABET.contains(&b))).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::{RecoveryHasher, COUNT};
    use uuid::Uuid;

    #[test]
    fn codes_are_distinct_formatted_and_bound_to_the_user() {
        let hasher = RecoveryHasher::new(b"k");
        let user = Uuid::now_v7();
        let (codes, stored) = hasher.generate(user);
        assert_eq!(codes.len(), COUNT);
        let mut unique: Vec<_> = stored.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), COUNT);
        for (code, hash) in codes.iter().zip(&stored) {
            assert_eq!(code.len(), 14);
            assert_eq!(hasher.hash(user, code), Some(*hash));
            assert_eq!(
                hasher.hash(user, &code.to_uppercase().replace('-', " ")),
                Some(*hash)
            );
            assert_ne!(hasher.hash(Uuid::now_v7(), code), Some(*hash));
            assert_ne!(RecoveryHasher::new(b"other").hash(user, code), Some(*hash));
        }
        assert_eq!(hasher.hash(user, "abcd-efgh-ijk"), None);
        assert_eq!(hasher.hash(user, "abcd-efgh-ijk1"), None);
    }
}
