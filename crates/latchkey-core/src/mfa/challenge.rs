//! The sign-in challenge between a correct password and the second factor.
//!
//! Guarantees: the `mfa_token` is 256 random bits, stored only as its SHA-256,
//! single use, short lived and limited in wrong answers; it carries what the
//! password step decided (user, lifetime, delivery mode, lockout key) so the
//! second step cannot change it.

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Prefix of mfa tokens.
pub const TOKEN_PREFIX: &str = "lk_mfa_";
/// Lifetime of a challenge.
pub const TTL: Duration = Duration::minutes(5);
/// Wrong answers a challenge allows; the next one kills it.
pub const MAX_ATTEMPTS: i32 = 5;

/// A stored challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaChallenge {
    /// UUIDv7.
    pub id: Uuid,
    /// The account whose password was correct.
    pub user_id: Uuid,
    /// SHA-256 of the token.
    pub token_hash: [u8; 32],
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// End of validity.
    pub expires_at: OffsetDateTime,
    /// Wrong answers so far.
    pub attempts: i32,
    /// Long session requested at the password step.
    pub remember_me: bool,
    /// Delivery mode requested at the password step.
    pub mode: crate::auth::Delivery,
    /// Lockout key of the password step (identifier or device).
    pub lockout_key: [u8; 32],
    /// The account's security stamp at the password step; the second step is
    /// refused once a password or factor change has moved it on.
    pub security_stamp: i64,
}
