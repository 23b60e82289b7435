//! Reading a result row by column name, whatever the engine.

use latchkey_core::ports::StoreError;
use time::OffsetDateTime;
use uuid::Uuid;

/// A result row as a backend decodes it: every accessor reads a nullable
/// column of that type (`None` for NULL) and fails with `Internal` when the
/// column is missing or holds another type. Timestamps come back exactly as
/// they were written (microseconds).
pub trait Row: Send + Sync {
    /// A UUID column.
    fn uuid(&self, column: &str) -> Result<Option<Uuid>, StoreError>;
    /// A text column.
    fn text(&self, column: &str) -> Result<Option<String>, StoreError>;
    /// A bytes column.
    fn bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// A 32-bit integer column (PostgreSQL `INTEGER`).
    fn i32(&self, column: &str) -> Result<Option<i32>, StoreError>;
    /// A 64-bit integer column (`BIGINT`, `COUNT(*)`).
    fn i64(&self, column: &str) -> Result<Option<i64>, StoreError>;
    /// A boolean column (`EXISTS(...)` too).
    fn bool(&self, column: &str) -> Result<Option<bool>, StoreError>;
    /// A timestamp column.
    fn time(&self, column: &str) -> Result<Option<OffsetDateTime>, StoreError>;
}

/// A Rust type one column decodes to (`T` for NOT NULL, `Option<T>` for nullable).
pub trait Column: Sized {
    /// Reads `column` of `row`; a NULL where `Self` has none is `Internal`.
    fn read<R: Row + ?Sized>(row: &R, column: &str) -> Result<Self, StoreError>;
}

/// `row.get::<T>("column")` for every [`Row`].
pub trait RowExt: Row {
    /// Reads `column` as `T`.
    fn get<T: Column>(&self, column: &str) -> Result<T, StoreError> {
        T::read(self, column)
    }
}

impl<R: Row + ?Sized> RowExt for R {}

fn not_null<T>(value: Option<T>, column: &str) -> Result<T, StoreError> {
    value.ok_or_else(|| StoreError::Internal(format!("column {column} is NULL").into()))
}

macro_rules! column {
    ($($t:ty => $accessor:ident),+ $(,)?) => {
        $(
            impl Column for Option<$t> {
                fn read<R: Row + ?Sized>(row: &R, column: &str) -> Result<Self, StoreError> {
                    row.$accessor(column)
                }
            }
            impl Column for $t {
                fn read<R: Row + ?Sized>(row: &R, column: &str) -> Result<Self, StoreError> {
                    not_null(row.$accessor(column)?, column)
                }
            }
        )+
    };
}

column!(
    Uuid => uuid,
    String => text,
    Vec<u8> => bytes,
    i32 => i32,
    i64 => i64,
    bool => bool,
    OffsetDateTime => time,
);

/// A stored 32-byte hash; any other length is a corrupt row.
pub(crate) fn hash32(bytes: &[u8]) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Internal("stored hash is not 32 bytes".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row whose every column is NULL.
    struct Nulls;

    impl Row for Nulls {
        fn uuid(&self, _: &str) -> Result<Option<Uuid>, StoreError> {
            Ok(None)
        }
        fn text(&self, _: &str) -> Result<Option<String>, StoreError> {
            Ok(None)
        }
        fn bytes(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(None)
        }
        fn i32(&self, _: &str) -> Result<Option<i32>, StoreError> {
            Ok(None)
        }
        fn i64(&self, _: &str) -> Result<Option<i64>, StoreError> {
            Ok(None)
        }
        fn bool(&self, _: &str) -> Result<Option<bool>, StoreError> {
            Ok(None)
        }
        fn time(&self, _: &str) -> Result<Option<OffsetDateTime>, StoreError> {
            Ok(None)
        }
    }

    #[test]
    fn null_reads_as_none_and_refuses_a_not_null_type() {
        assert_eq!(Nulls.get::<Option<Uuid>>("id").ok(), Some(None));
        let err = Nulls.get::<Uuid>("id").unwrap_err();
        assert!(matches!(err, StoreError::Internal(_)));
        assert!(Nulls.get::<OffsetDateTime>("created_at").is_err());
    }

    #[test]
    fn hashes_are_exactly_32_bytes() {
        assert!(hash32(&[0; 32]).is_ok());
        assert!(hash32(&[0; 31]).is_err());
        assert!(hash32(&[0; 33]).is_err());
    }
}
