//! The one mapping from sqlx/PostgreSQL errors to `StoreError`.

use latchkey_core::ports::StoreError;

/// SQLSTATEs that mean the server cannot serve us right now.
fn is_unavailable_state(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "53400")
}

/// Maps an sqlx error: connectivity, shutdown and overload are `Unavailable`,
/// unique violations `Conflict` (naming the constraint), everything else `Internal`.
pub fn map_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(Box::new(e)),
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                let constraint = match db.constraint() {
                    Some("users_email_normalized") => "users_email_normalized",
                    _ => "unique",
                };
                return StoreError::Conflict { constraint };
            }
            if db.code().as_deref().is_some_and(is_unavailable_state) {
                return StoreError::Unavailable(Box::new(e));
            }
            StoreError::Internal(Box::new(e))
        }
        _ => StoreError::Internal(Box::new(e)),
    }
}
