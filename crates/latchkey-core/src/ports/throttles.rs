//! Brute-force defence counters.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StoreError;

/// Failed-login bookkeeping for one identifier (the HMAC of a normalized
/// email), whether or not an account has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Throttle {
    /// Consecutive failures since the last lock (or success).
    pub failures: u32,
    /// Locks so far (each doubles the next lock's length).
    pub lock_count: u32,
    /// Locked until then (may be in the past).
    pub locked_until: Option<OffsetDateTime>,
    /// When the attempt before the latest reservation was made (as
    /// [`ThrottleStore::reserve_throttle_attempt`] reports it; `None` for a
    /// new row or from other reads).
    pub previous_attempt_at: Option<OffsetDateTime>,
}

/// Brute-force defence state per identifier (an email's HMAC, a device
/// cookie's, a passkey's). Every method is one atomic statement: concurrent
/// attempts never lose a count nor lock twice.
#[async_trait]
pub trait ThrottleStore: Send + Sync {
    /// The state of `key`, if any failure was recorded.
    async fn throttle(&self, key: &[u8; 32]) -> Result<Option<Throttle>, StoreError>;

    /// The states of those of `keys` with a recorded failure, each with its
    /// key, in one read (at most a page of keys: the admin listing).
    async fn throttles(&self, keys: &[[u8; 32]]) -> Result<Vec<([u8; 32], Throttle)>, StoreError>;

    /// Reserves one attempt before its credential is checked: in one
    /// statement, counts it (creating the row) unless a lock is in force at
    /// `now`, and returns the new state with the time of the previous
    /// attempt. However many attempts race, each gets
    /// its own count: the caller refuses those past the threshold before any
    /// hashing. A wrong answer keeps the count; a correct one gives it back
    /// ([`Self::release_throttle_attempt`]) or clears the row.
    async fn reserve_throttle_attempt(
        &self,
        key: &[u8; 32],
        now: OffsetDateTime,
    ) -> Result<Throttle, StoreError>;

    /// Gives back one reserved attempt (a correct first factor whose second
    /// step is still to come, or an attempt abandoned before its answer): the
    /// count goes down by one, never below zero. For an attempt refused
    /// unchecked, `previous_attempt_at` (what its reservation reported) is
    /// also put back as the time of the last attempt (the earlier of the two
    /// wins, whatever order racing refusals end in), so refusals never make
    /// the reserved counts look recent.
    async fn release_throttle_attempt(
        &self,
        key: &[u8; 32],
        previous_attempt_at: Option<OffsetDateTime>,
    ) -> Result<(), StoreError>;

    /// Locks `key` until `until` if it has at least `threshold` failures
    /// (resetting them and counting the lock); `false` if another request
    /// locked it first or the count is below the threshold.
    async fn lock_throttle(
        &self,
        key: &[u8; 32],
        threshold: u32,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Forgets `key` (success or unlock); whether anything was recorded.
    async fn clear_throttle(&self, key: &[u8; 32]) -> Result<bool, StoreError>;
}
