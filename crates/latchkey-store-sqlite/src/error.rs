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

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::error::Error as StdError;
    use std::fmt;

    use sqlx::error::{DatabaseError, ErrorKind};

    use super::*;

    /// A database error as the SQLite driver would report it.
    #[derive(Debug)]
    struct FakeDb {
        code: &'static str,
        message: &'static str,
        unique: bool,
    }

    impl fmt::Display for FakeDb {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.message)
        }
    }

    impl StdError for FakeDb {}

    impl DatabaseError for FakeDb {
        fn message(&self) -> &str {
            self.message
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
        fn kind(&self) -> ErrorKind {
            if self.unique {
                ErrorKind::UniqueViolation
            } else {
                ErrorKind::Other
            }
        }
    }

    fn db(code: &'static str, message: &'static str, unique: bool) -> sqlx::Error {
        sqlx::Error::Database(Box::new(FakeDb {
            code,
            message,
            unique,
        }))
    }

    #[test]
    fn connectivity_and_contention_are_unavailable() {
        let cases = [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::WorkerCrashed,
            sqlx::Error::Io(std::io::Error::other("disk gone")),
            db("5", "database is locked", false),
            db("517", "database is locked (snapshot)", false),
            db("6", "database table is locked", false),
            db("262", "database table is locked (shared cache)", false),
        ];
        for e in cases {
            let text = e.to_string();
            let mapped = map_error(e);
            assert!(matches!(mapped, StoreError::Unavailable(_)), "{text}");
            assert_eq!(mapped.to_string(), "database unavailable");
        }
    }

    #[test]
    fn unique_violations_name_the_index() {
        let err = map_error(db(
            "2067",
            "UNIQUE constraint failed: users.email_normalized",
            true,
        ));
        assert!(matches!(
            err,
            StoreError::Conflict {
                constraint: "users_email_normalized"
            }
        ));
        let err = map_error(db("2067", "UNIQUE constraint failed: other.column", true));
        assert!(matches!(
            err,
            StoreError::Conflict {
                constraint: "unique"
            }
        ));
    }

    #[test]
    fn everything_else_is_internal_and_says_nothing() {
        let cases = [
            sqlx::Error::RowNotFound,
            sqlx::Error::ColumnNotFound("secret_column".into()),
            db("1", "near \"SELEC\": syntax error", false),
            db("787", "FOREIGN KEY constraint failed", false),
            db("11", "database disk image is malformed", false),
        ];
        for e in cases {
            let mapped = map_error(e);
            assert!(matches!(mapped, StoreError::Internal(_)), "{mapped:?}");
            assert_eq!(mapped.to_string(), "database error");
            assert!(mapped.source().is_some(), "the cause is kept for logs");
        }
    }
}
