//! Second factors: TOTP (RFC 6238), recovery codes, and the records and
//! sign-in challenges that tie them to an account.

pub mod base32;
pub mod challenge;
pub mod passkey;
pub mod recovery;
pub mod totp;

use time::OffsetDateTime;
use uuid::Uuid;

/// Associated-data purpose of sealed TOTP seeds (the keyring derives a key per
/// purpose from the master key).
pub const TOTP_SEAL_PURPOSE: &str = "totp-secrets";

/// A stored TOTP factor: pending until confirmed with a valid code.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpRecord {
    /// UUIDv7 of this enrolment; the associated data of the sealed seed, so a
    /// ciphertext copied to another row does not open.
    pub id: Uuid,
    /// The account.
    pub user_id: Uuid,
    /// The seed sealed with [`crate::seal::Keyring`] (never stored in clear).
    pub secret_sealed: Vec<u8>,
    /// Id of the key that sealed it (for start-up checks and `keys reencrypt`).
    pub key_id: String,
    /// When the enrolment was started.
    pub created_at: OffsetDateTime,
    /// When a valid code confirmed it; `None` while pending.
    pub confirmed_at: Option<OffsetDateTime>,
    /// The last time step accepted (a code is never accepted twice).
    pub last_step: Option<i64>,
}

impl std::fmt::Debug for TotpRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpRecord")
            .field("id", &self.id)
            .field("key_id", &self.key_id)
            .field("confirmed", &self.confirmed_at.is_some())
            .finish_non_exhaustive()
    }
}

/// What a user has enabled, as `GET /v1/me` reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MfaSummary {
    /// A confirmed TOTP factor.
    pub totp: bool,
    /// Registered passkeys.
    pub webauthn: u32,
    /// Unused recovery codes.
    pub recovery_codes_left: u32,
}

impl MfaSummary {
    /// Whether sign-in needs a second factor.
    pub fn enabled(&self) -> bool {
        self.totp || self.webauthn > 0
    }
}
