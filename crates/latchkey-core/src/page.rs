//! Cursor pagination: limits and opaque, authenticated cursors.
//!
//! Guarantees: a cursor is the position after the last item of a page, bound
//! by an HMAC to the listing and the query it was made for. A cursor that was
//! altered, truncated, made with another key, or presented with another query
//! is refused (`None`), never read as some other position: a client cannot
//! walk a listing from a position it made up, nor mix two searches.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;
use zeroize::Zeroizing;

/// Items per page when the client names no `limit`.
pub const DEFAULT_LIMIT: u32 = 50;
/// Most items per page; a larger `limit` is refused.
pub const MAX_LIMIT: u32 = 200;
/// Longest cursor looked at (a real one is 44 characters).
pub const MAX_CURSOR_LEN: usize = 128;

const VERSION: u8 = 1;
const TAG: usize = 16;

/// A page's size, as asked: `None` → [`DEFAULT_LIMIT`]; `1..=MAX_LIMIT` as
/// given; anything else (0, beyond the maximum) is refused.
pub fn limit(asked: Option<u32>) -> Option<u32> {
    match asked {
        None => Some(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Some(n),
        Some(_) => None,
    }
}

/// Makes and reads cursors with one secret key.
#[derive(Clone)]
pub struct Cursors {
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Cursors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cursors(<key>)")
    }
}

impl Cursors {
    /// Cursors keyed by `key` (any length; the server derives it from its
    /// HMAC secret).
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: Zeroizing::new(key.to_vec()),
        }
    }

    fn tag(&self, listing: &str, query: &str, after: Uuid) -> [u8; TAG] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(b"latchkey cursor v1\0");
        mac.update(listing.as_bytes());
        mac.update(b"\0");
        mac.update(query.as_bytes());
        mac.update(b"\0");
        mac.update(after.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG];
        tag.copy_from_slice(&full[..TAG]);
        tag
    }

    /// The cursor of the position after `after` in `listing` searched by `query`.
    pub fn make(&self, listing: &str, query: &str, after: Uuid) -> String {
        let mut raw = Vec::with_capacity(1 + 16 + TAG);
        raw.push(VERSION);
        raw.extend_from_slice(after.as_bytes());
        raw.extend_from_slice(&self.tag(listing, query, after));
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The position `cursor` names, if this key made it for this listing and
    /// query (compared in constant time); `None` for anything else.
    pub fn read(&self, listing: &str, query: &str, cursor: &str) -> Option<Uuid> {
        if cursor.len() > MAX_CURSOR_LEN {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        if raw.len() != 1 + 16 + TAG || raw[0] != VERSION {
            return None;
        }
        let after = Uuid::from_slice(&raw[1..17]).ok()?;
        let expected = self.tag(listing, query, after);
        let given: &[u8] = &raw[17..];
        bool::from(subtle::ConstantTimeEq::ct_eq(given, &expected[..])).then_some(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_and_refuse_out_of_range() {
        assert_eq!(limit(None), Some(DEFAULT_LIMIT));
        assert_eq!(limit(Some(1)), Some(1));
        assert_eq!(limit(Some(MAX_LIMIT)), Some(MAX_LIMIT));
        assert_eq!(limit(Some(0)), None);
        assert_eq!(limit(Some(10_000)), None);
    }

    #[test]
    fn cursors_round_trip_and_every_alteration_is_refused() {
        let cursors = Cursors::new(b"k1");
        let id = Uuid::now_v7();
        let c = cursors.make("users", "ada", id);
        assert_eq!(cursors.read("users", "ada", &c), Some(id));
        assert_eq!(cursors.read("users", "bob", &c), None, "other query");
        assert_eq!(cursors.read("roles", "ada", &c), None, "other listing");
        assert_eq!(
            Cursors::new(b"k2").read("users", "ada", &c),
            None,
            "other key"
        );
        let mut flipped = c.clone().into_bytes();
        for i in 0..flipped.len() {
            let original = flipped[i];
            flipped[i] = if original == b'A' { b'B' } else { b'A' };
            let text = String::from_utf8(flipped.clone()).unwrap();
            if text != c {
                assert_eq!(cursors.read("users", "ada", &text), None, "byte {i}");
            }
            flipped[i] = original;
        }
        for bad in [
            "",
            "x",
            &c[..c.len() - 1],
            &format!("{c}A"),
            "%%%",
            &"A".repeat(500),
        ] {
            assert_eq!(cursors.read("users", "ada", bad), None, "{bad:?}");
        }
    }
}
