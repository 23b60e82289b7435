//! Second factors: TOTP, recovery codes, sign-in challenges.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::mfa::challenge::MfaChallenge;
use crate::mfa::MfaSummary;
use crate::mfa::TotpRecord;

use super::Aftermath;
use super::StoreError;

/// Second factors: TOTP enrolments, recovery codes, sign-in challenges. Every
/// use of a code is one conditional write, so two concurrent requests with the
/// same code cannot both succeed.
#[async_trait]
pub trait MfaStore: Send + Sync {
    /// The user's TOTP factor (pending or confirmed), if any.
    async fn totp(&self, user_id: Uuid) -> Result<Option<TotpRecord>, StoreError>;

    /// Stores a pending enrolment, replacing a pending one; `false` (nothing
    /// written) when a confirmed factor exists.
    async fn put_pending_totp(&self, record: &TotpRecord) -> Result<bool, StoreError>;

    /// Confirms the pending enrolment `id` at `step`, replaces the user's
    /// recovery codes with `recovery_hashes` and writes `after`, in one
    /// transaction; `false` (nothing written) when `id` is not the user's
    /// pending enrolment any more.
    async fn confirm_totp(
        &self,
        user_id: Uuid,
        id: Uuid,
        step: i64,
        recovery_hashes: &[[u8; 32]],
        now: OffsetDateTime,
        after: &Aftermath<'_>,
    ) -> Result<bool, StoreError>;

    /// Records `step` as used on the confirmed factor `id` if it is later than the
    /// last used step; `false` otherwise (a replay or a lost race).
    async fn use_totp_step(&self, id: Uuid, step: i64) -> Result<bool, StoreError>;

    /// Removes the user's TOTP factor (pending or confirmed), in one
    /// transaction that writes `after` only when the removed factor was
    /// confirmed (a pending enrolment protected nothing) and removes the
    /// recovery codes when no factor is left (they protect nothing alone);
    /// whether a factor existed. Concurrent factor removals of one user take
    /// turns, so the last one always takes the codes.
    async fn delete_totp(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
        after: &Aftermath<'_>,
    ) -> Result<bool, StoreError>;

    /// Replaces the user's recovery codes.
    async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        hashes: &[[u8; 32]],
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Marks the unused code with this hash as used and writes `after`, in one
    /// transaction; `false` (nothing written) if there is no such code.
    async fn use_recovery_code(
        &self,
        user_id: Uuid,
        hash: &[u8; 32],
        now: OffsetDateTime,
        after: &Aftermath<'_>,
    ) -> Result<bool, StoreError>;

    /// What the user has enabled.
    async fn mfa_summary(&self, user_id: Uuid) -> Result<MfaSummary, StoreError>;

    /// Distinct ids of the keys that sealed stored TOTP seeds.
    async fn totp_key_ids(&self) -> Result<Vec<String>, StoreError>;

    /// Up to `limit` TOTP records not sealed with `key_id` (for re-encryption).
    async fn totp_not_sealed_with(
        &self,
        key_id: &str,
        limit: u32,
    ) -> Result<Vec<TotpRecord>, StoreError>;

    /// Replaces the sealed seed of `id` if it is still `old`; whether it was.
    async fn reseal_totp(
        &self,
        id: Uuid,
        old: &[u8],
        sealed: &[u8],
        key_id: &str,
    ) -> Result<bool, StoreError>;

    /// Stores a new sign-in challenge.
    async fn create_mfa_challenge(&self, challenge: &MfaChallenge) -> Result<(), StoreError>;

    /// The unused challenge with this token hash, if any (expired ones too: the
    /// caller checks the time).
    async fn mfa_challenge(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<MfaChallenge>, StoreError>;

    /// Spends one attempt of the challenge before its answer is checked: in one
    /// conditional write, adds one to `attempts` only if the challenge is
    /// unused, unexpired at `now` and has fewer than `max_attempts` attempts.
    /// Whether an attempt was granted; however many callers race, at most
    /// `max_attempts` are granted per challenge.
    async fn take_mfa_attempt(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        max_attempts: i32,
    ) -> Result<bool, StoreError>;

    /// Marks the challenge used if it is unused, unexpired at `now` and has fewer
    /// than `max_attempts` wrong answers; whether this call consumed it.
    async fn consume_mfa_challenge(
        &self,
        id: Uuid,
        now: OffsetDateTime,
        max_attempts: i32,
    ) -> Result<bool, StoreError>;
}
