//! A statement and its arguments, independent of the engine that runs it.
//!
//! Statements use `$N` placeholders (PostgreSQL's, which SQLite also reads as
//! "argument N"). Arguments carry their Rust type, NULL included, so each
//! backend binds them with the encoding its schema uses (a timestamp is a
//! `timestamptz` on PostgreSQL and unix microseconds on SQLite).

use std::borrow::Cow;
use std::fmt::Write as _;

use time::OffsetDateTime;
use uuid::Uuid;

/// One bound value. `None` is SQL NULL of that type.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg<'a> {
    /// A UUID (`uuid` / 16-byte blob).
    Uuid(Option<Uuid>),
    /// Text.
    Text(Option<Cow<'a, str>>),
    /// Bytes (`bytea` / blob).
    Bytes(Option<&'a [u8]>),
    /// A 32-bit integer (`INTEGER` columns on PostgreSQL).
    I32(Option<i32>),
    /// A 64-bit integer.
    I64(Option<i64>),
    /// A boolean (`boolean` / 0 or 1).
    Bool(Option<bool>),
    /// A point in time, at the microsecond precision of `Clock::now`.
    Time(Option<OffsetDateTime>),
}

/// A statement with its arguments, in placeholder order (`$1` first).
#[derive(Debug, Clone)]
pub struct Query<'a> {
    /// The SQL text.
    pub sql: &'a str,
    /// The arguments for `$1`, `$2`, ...
    pub args: Vec<Arg<'a>>,
}

/// Starts a statement: `sql("... WHERE id = $1").bind(id)`.
pub fn sql(sql: &str) -> Query<'_> {
    Query {
        sql,
        args: Vec::new(),
    }
}

impl<'a> Query<'a> {
    /// Appends the argument for the next placeholder.
    #[must_use]
    pub fn bind(mut self, value: impl Into<Arg<'a>>) -> Self {
        self.args.push(value.into());
        self
    }

    /// Appends one argument per item (the placeholders of [`placeholders`]).
    #[must_use]
    pub fn bind_all<T: Into<Arg<'a>> + Copy>(mut self, values: &[T]) -> Self {
        self.args.extend(values.iter().map(|v| (*v).into()));
        self
    }
}

/// `$first, $first+1, ...` for `count` arguments: a set written as an `IN`
/// list both engines read (PostgreSQL's `ANY(array)` has no SQLite twin).
pub fn placeholders(first: usize, count: usize) -> String {
    let mut out = String::with_capacity(count * 4);
    for n in first..first + count {
        if n > first {
            out.push_str(", ");
        }
        let _ = write!(out, "${n}");
    }
    out
}

macro_rules! arg_from {
    ($variant:ident: $($t:ty => $conv:expr),+ $(,)?) => {
        $(impl<'a> From<$t> for Arg<'a> {
            fn from(v: $t) -> Self {
                #[allow(clippy::redundant_closure_call)]
                Arg::$variant(($conv)(v))
            }
        })+
    };
}

arg_from!(Uuid: Uuid => Some, Option<Uuid> => |v| v);
arg_from!(Text:
    &'a str => |v| Some(Cow::Borrowed(v)),
    &'a String => |v: &'a String| Some(Cow::Borrowed(v.as_str())),
    String => |v| Some(Cow::Owned(v)),
    Option<&'a str> => |v: Option<&'a str>| v.map(Cow::Borrowed),
    &'a Option<String> => |v: &'a Option<String>| v.as_deref().map(Cow::Borrowed),
);
arg_from!(Bytes:
    &'a [u8] => Some,
    &'a Vec<u8> => |v: &'a Vec<u8>| Some(v.as_slice()),
    &'a [u8; 32] => |v: &'a [u8; 32]| Some(&v[..]),
    Option<&'a [u8]> => |v| v,
);
arg_from!(I32: i32 => Some);
arg_from!(I64: i64 => Some, u32 => |v| Some(i64::from(v)));
arg_from!(Bool: bool => Some, Option<bool> => |v| v);
arg_from!(Time: OffsetDateTime => Some, Option<OffsetDateTime> => |v| v);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_from_first() {
        assert_eq!(placeholders(3, 3), "$3, $4, $5");
        assert_eq!(placeholders(1, 1), "$1");
        assert_eq!(placeholders(1, 0), "");
    }

    #[test]
    fn arguments_keep_their_type_and_nulls() {
        let q = sql("$1 $2 $3 $4")
            .bind(None::<Uuid>)
            .bind(Option::<&str>::None)
            .bind(7_u32)
            .bind(&[1_u8; 32]);
        assert_eq!(
            q.args,
            vec![
                Arg::Uuid(None),
                Arg::Text(None),
                Arg::I64(Some(7)),
                Arg::Bytes(Some(&[1_u8; 32][..]))
            ]
        );
    }
}
