//! Timestamps on the wire: RFC 3339 in UTC, as API.md requires.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Serde adapter writing an `OffsetDateTime` as an RFC 3339 UTC string.
pub mod rfc3339 {
    use super::{OffsetDateTime, Rfc3339};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as RFC 3339 in UTC.
    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        let utc = t.to_offset(time::UtcOffset::UTC);
        let text = utc.format(&Rfc3339).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    /// Parses an RFC 3339 string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339).map_err(serde::de::Error::custom)
    }
}

/// Serde adapter for an optional timestamp: RFC 3339 UTC or `null`.
pub mod rfc3339_option {
    use super::OffsetDateTime;
    use serde::Serializer;

    /// Serializes `Some` as RFC 3339 in UTC and `None` as `null`.
    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::rfc3339::serialize(t, s),
            None => s.serialize_none(),
        }
    }
}

/// Formats a timestamp as RFC 3339 UTC (for logs and bodies built by hand).
pub fn format_rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}
