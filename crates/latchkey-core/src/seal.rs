//! Encryption at rest for secrets the server must read back (signing keys now,
//! TOTP seeds later): XChaCha20-Poly1305 under keys derived from the master key.
//!
//! Guarantees:
//! - every ciphertext names the key that sealed it (an 8-byte id derived from the
//!   key, revealing nothing about it), so a ring of several keys can open old
//!   ciphertexts while sealing with the current one, and a ciphertext sealed
//!   under a key the ring does not hold is reported as such, not as garbage;
//! - the caller's associated data (a row id, a key id) is authenticated: a
//!   ciphertext copied to another row fails to open;
//! - nonces are 192-bit random values (no counter to lose, no practical collision);
//! - each purpose derives its own key (HKDF-SHA256 with the purpose as info),
//!   so one master key serves several stores without cross-use;
//! - plaintexts come back in `Zeroizing` buffers; keys are zeroized on drop.
//!
//! Format: `0x01 || key id (8) || nonce (24) || ciphertext || tag (16)`.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

/// Why a ciphertext could not be opened (or a plaintext sealed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Sealed under a key this ring does not hold (another master key).
    #[error(
        "sealed with encryption key {0}, which is not configured (was the master key changed?)"
    )]
    UnknownKey(String),
    /// Tampered with, truncated, or opened with the wrong associated data.
    #[error("ciphertext is corrupt or belongs to another record")]
    Corrupt,
    /// Not in a format this version understands.
    #[error("unknown ciphertext format")]
    Format,
}

/// One encryption key and its public id.
struct SealKey {
    id: [u8; KEY_ID_LEN],
    cipher: XChaCha20Poly1305,
}

impl SealKey {
    /// Derives the key of `purpose` from `master` (any length; the caller
    /// enforces the minimum strength).
    fn derive(master: &[u8], purpose: &str) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(b"latchkey seal v1"), master);
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA256's 8160-byte limit: cannot fail.
        hk.expand(purpose.as_bytes(), key.as_mut())
            .unwrap_or_else(|_| unreachable!("32-byte HKDF output"));
        let digest = Sha256::new()
            .chain_update(b"latchkey seal key id\0")
            .chain_update(key.as_ref())
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        Self {
            id,
            cipher: XChaCha20Poly1305::new(key.as_ref().into()),
        }
    }

    fn id_hex(id: &[u8]) -> String {
        crate::hex::encode(id)
    }
}

/// The keys of one purpose: the current one seals, every one opens.
pub struct Keyring {
    current: SealKey,
    previous: Vec<SealKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &SealKey::id_hex(&self.current.id))
            .field("previous", &self.previous.len())
            .finish()
    }
}

impl Keyring {
    /// A ring for `purpose` (e.g. `"signing-keys"`) sealing under `current`
    /// and still opening what `previous` master keys sealed.
    pub fn new(purpose: &str, current: &[u8], previous: &[&[u8]]) -> Self {
        Self {
            current: SealKey::derive(current, purpose),
            previous: previous
                .iter()
                .map(|m| SealKey::derive(m, purpose))
                .collect(),
        }
    }

    /// The id of the sealing key (hex), for logs and `reencrypt` reports.
    pub fn current_key_id(&self) -> String {
        SealKey::id_hex(&self.current.id)
    }

    /// Whether the ring holds the key with this id (hex), current or previous.
    pub fn knows(&self, key_id: &str) -> bool {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .any(|k| SealKey::id_hex(&k.id) == key_id)
    }

    /// Re-seals a ciphertext under the current key (same `aad`); `None` when it
    /// already is.
    pub fn reseal(&self, sealed: &[u8], aad: &[u8]) -> Result<Option<Vec<u8>>, SealError> {
        if sealed.get(1..=KEY_ID_LEN) == Some(&self.current.id[..]) {
            return Ok(None);
        }
        let plaintext = self.open(sealed, aad)?;
        Ok(Some(self.seal(&plaintext, aad)))
    }

    /// Encrypts `plaintext` bound to `aad` under the current key.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encryption fails only for plaintexts near 256 GiB.
        let body = self
            .current
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_else(|_| unreachable!("plaintext within XChaCha20 limits"));
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        out.push(VERSION);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        out
    }

    /// Decrypts a ciphertext made by [`Keyring::seal`] with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < HEADER_LEN + TAG_LEN || sealed[0] != VERSION {
            return Err(SealError::Format);
        }
        let id = &sealed[1..=KEY_ID_LEN];
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or_else(|| SealError::UnknownKey(SealKey::id_hex(id)))?;
        let nonce = XNonce::from_slice(&sealed[1 + KEY_ID_LEN..HEADER_LEN]);
        key.cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Corrupt)
    }

    /// Whether `sealed` was made with an older key (re-encryption candidate).
    pub fn is_stale(&self, sealed: &[u8]) -> bool {
        sealed.get(1..=KEY_ID_LEN) != Some(&self.current.id[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &[u8] = b"a master key of at least thirty-two bytes!";
    const OTHER: &[u8] = b"another master key, also long enough......";

    #[test]
    fn a_sealed_secret_opens_only_with_its_associated_data() {
        let ring = Keyring::new("test", MASTER, &[]);
        let sealed = ring.seal(b"the secret", b"row-1");
        assert_eq!(sealed.len(), HEADER_LEN + 10 + TAG_LEN);
        assert!(!sealed.windows(10).any(|w| w == b"the secret"));
        assert_eq!(&*ring.open(&sealed, b"row-1").unwrap(), b"the secret");
        assert_eq!(ring.open(&sealed, b"row-2"), Err(SealError::Corrupt));
        assert_ne!(ring.seal(b"the secret", b"row-1"), sealed, "fresh nonce");
    }

    #[test]
    fn tampering_and_truncation_are_detected() {
        let ring = Keyring::new("test", MASTER, &[]);
        let sealed = ring.seal(b"the secret", b"aad");
        for i in HEADER_LEN - NONCE_LEN..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(ring.open(&bad, b"aad"), Err(SealError::Corrupt), "byte {i}");
        }
        assert_eq!(
            ring.open(&sealed[..sealed.len() - 1], b"aad"),
            Err(SealError::Corrupt)
        );
        assert_eq!(
            ring.open(&sealed[..HEADER_LEN], b"aad"),
            Err(SealError::Format)
        );
        let mut version = sealed.clone();
        version[0] = 2;
        assert_eq!(ring.open(&version, b"aad"), Err(SealError::Format));
    }

    #[test]
    fn another_master_key_is_reported_as_such() {
        let sealed = Keyring::new("test", MASTER, &[]).seal(b"s", b"aad");
        let other = Keyring::new("test", OTHER, &[]);
        assert!(matches!(
            other.open(&sealed, b"aad"),
            Err(SealError::UnknownKey(_))
        ));
        // Purposes are separated: the same master under another purpose is another key.
        let purpose = Keyring::new("other purpose", MASTER, &[]);
        assert!(matches!(
            purpose.open(&sealed, b"aad"),
            Err(SealError::UnknownKey(_))
        ));
    }

    #[test]
    fn a_new_master_key_seals_while_the_previous_one_still_opens() {
        let old = Keyring::new("test", MASTER, &[]);
        let sealed = old.seal(b"s", b"aad");
        let rotated = Keyring::new("test", OTHER, &[MASTER]);
        assert!(rotated.is_stale(&sealed));
        assert_eq!(&*rotated.open(&sealed, b"aad").unwrap(), b"s");
        let resealed = rotated.seal(b"s", b"aad");
        assert!(!rotated.is_stale(&resealed));
        assert!(old.open(&resealed, b"aad").is_err());
        assert_ne!(old.current_key_id(), rotated.current_key_id());
        assert_eq!(old.current_key_id().len(), 16);
    }
}
