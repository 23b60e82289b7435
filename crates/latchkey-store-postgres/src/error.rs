//! The one mapping from sqlx/PostgreSQL errors to `StoreError`.

use latchkey_core::ports::StoreError;

/// SQLSTATEs that mean the server cannot serve us right now.
fn is_unavailable_state(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "53400")
        // Serialization failure and deadlock: the transaction was rolled back and
        // a retry can succeed; a 503 says so, a 500 would claim a bug.
        || matches!(code, "40001" | "40P01")
        // A statement or lock timeout set on the role or database (query
        // canceled, lock not available): the server is too busy, not broken.
        || matches!(code, "57014" | "55P03")
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

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::error::Error as StdError;
    use std::fmt;

    use sqlx::error::{DatabaseError, ErrorKind};

    use super::*;

    /// A database error as the PostgreSQL driver would report it.
    #[derive(Debug)]
    struct FakeDb {
        code: &'static str,
        constraint: Option<&'static str>,
    }

    impl fmt::Display for FakeDb {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "SQLSTATE {}", self.code)
        }
    }

    impl StdError for FakeDb {}

    impl DatabaseError for FakeDb {
        fn message(&self) -> &'static str {
            "duplicate key value violates unique constraint"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.code))
        }
        fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
            self
        }
        fn constraint(&self) -> Option<&str> {
            self.constraint
        }
        fn kind(&self) -> ErrorKind {
            if self.code == "23505" {
                ErrorKind::UniqueViolation
            } else {
                ErrorKind::Other
            }
        }
    }

    fn db(code: &'static str, constraint: Option<&'static str>) -> sqlx::Error {
        sqlx::Error::Database(Box::new(FakeDb { code, constraint }))
    }

    #[test]
    fn connectivity_shutdown_overload_and_deadlocks_are_unavailable() {
        let cases = [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::WorkerCrashed,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            sqlx::Error::Tls("handshake failed".into()),
            db("08000", None),
            db("08001", None),
            db("08006", None),
            db("57P01", None),
            db("57P02", None),
            db("57P03", None),
            db("53300", None),
            db("40001", None),
            db("40P01", None),
            db("57014", None),
            db("55P03", None),
        ];
        for e in cases {
            let text = e.to_string();
            let mapped = map_error(e);
            assert!(matches!(mapped, StoreError::Unavailable(_)), "{text}");
            assert_eq!(mapped.to_string(), "database unavailable");
        }
    }

    #[test]
    fn unique_violations_name_the_constraint() {
        let err = map_error(db("23505", Some("users_email_normalized")));
        assert!(matches!(
            err,
            StoreError::Conflict {
                constraint: "users_email_normalized"
            }
        ));
        for other in [Some("something_else"), None] {
            let err = map_error(db("23505", other));
            assert!(matches!(
                err,
                StoreError::Conflict {
                    constraint: "unique"
                }
            ));
        }
    }

    #[test]
    fn everything_else_is_internal_and_says_nothing() {
        let cases = [
            sqlx::Error::RowNotFound,
            sqlx::Error::ColumnNotFound("secret_column".into()),
            db("42601", None),                  // syntax error
            db("23503", Some("sessions_fkey")), // foreign key violation
            db("22001", None),                  // value too long
        ];
        for e in cases {
            let mapped = map_error(e);
            assert!(matches!(mapped, StoreError::Internal(_)), "{mapped:?}");
            assert_eq!(mapped.to_string(), "database error");
            assert!(mapped.source().is_some(), "the cause is kept for logs");
        }
    }
}
