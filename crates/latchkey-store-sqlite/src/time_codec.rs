//! Timestamps as unix microseconds, the exact precision of `Clock::now`.

use latchkey_core::ports::StoreError;
use time::OffsetDateTime;

/// Microseconds since the epoch.
pub fn to_micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// Back from microseconds; a value out of range means a corrupt row.
pub fn from_micros(micros: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|e| StoreError::Internal(Box::new(e)))
}
