//! The one mapping from sqlx/SQLite errors to `StoreError`.

use latchkey_core::ports::StoreError;

/// SQLite primary result codes that mean "try again later", not "bug".
const SQLITE_BUSY: &str = "5";
const SQLITE_LOCKED: &str = "6";

/// Maps an sqlx error: connectivity and lock contention are `Unavailable`, unique
/// violations `Conflict` (naming the index), everything else `Internal`.
pub fn map_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(Box::new(e)),
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                let constraint = if db.message().contains("users.email_normalized") {
                    "users_email_normalized"
                } else {
                    "unique"
                };
                return StoreError::Conflict { constraint };
            }
            let code = db.code();
            let primary = code.as_deref().map(|c| {
                // Extended codes carry the primary code in their low byte.
                c.parse::<i32>()
                    .map_or_else(|_| c.to_owned(), |n| (n & 0xff).to_string())
            });
            match primary.as_deref() {
                Some(SQLITE_BUSY | SQLITE_LOCKED) => StoreError::Unavailable(Box::new(e)),
                _ => StoreError::Internal(Box::new(e)),
            }
        }
        _ => StoreError::Internal(Box::new(e)),
    }
}
