//! Breached-password checks: is this password in a known breach corpus?
//!
//! The port ([`BreachChecker`]) sees only the SHA-1 of the (NFKC) password, the
//! format breach corpora use; the range-API adapter sends only its first five
//! hex characters (k-anonymity). [`BreachList`] is the offline checker: a
//! file of `HASH[:COUNT]` lines loaded into a sorted array of 8-byte prefixes
//! (8 bytes per entry; a false positive needs a 64-bit collision).

use std::io::BufRead;

use async_trait::async_trait;
use sha1::{Digest, Sha1};

/// The SHA-1 of a password, upper-case hex (40 characters).
pub fn sha1_hex(password: &str) -> String {
    Sha1::digest(password.as_bytes())
        .iter()
        .fold(String::with_capacity(40), |mut s, b| {
            use std::fmt::Write;
            let _ = write!(s, "{b:02X}");
            s
        })
}

/// Why a check could not answer (logged; the caller then fails open or
/// closed as configured). Never carries the password or its hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreachCheckUnavailable {
    /// A recent failure opened the circuit: no request is sent for a while.
    #[error("breached-password check unavailable: circuit open after a failure")]
    CircuitOpen,
    /// What was to be checked is not an upper-case SHA-1 (a bug).
    #[error("breached-password check unavailable: not a SHA-1")]
    NotSha1,
    /// The service did not answer within the timeout.
    #[error("breached-password check unavailable: timed out")]
    TimedOut,
    /// The request could not be sent or its answer read.
    #[error("breached-password check unavailable: request failed")]
    RequestFailed,
    /// The service answered with a status other than success.
    #[error("breached-password check unavailable: answered {0}")]
    Status(u16),
    /// The answer was larger than any range answer can be.
    #[error("breached-password check unavailable: response too large")]
    TooLarge,
    /// The answer was not text.
    #[error("breached-password check unavailable: response is not text")]
    NotText,
}

/// Why a breach-check client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("HTTP client: {0}")]
pub struct BreachClientError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Answers whether a password (given as its SHA-1, upper-case hex) is breached.
#[async_trait]
pub trait BreachChecker: Send + Sync + std::fmt::Debug {
    /// `true` when the hash is in the corpus.
    async fn is_breached(&self, sha1_hex: &str) -> Result<bool, BreachCheckUnavailable>;
}

/// An offline corpus held in memory.
#[derive(Debug, Default)]
pub struct BreachList {
    prefixes: Vec<u64>,
}

/// Why a corpus file was refused.
#[derive(Debug, thiserror::Error)]
pub enum BreachListError {
    /// Reading failed.
    #[error("cannot read the breached-password file: {0}")]
    Io(#[from] std::io::Error),
    /// A line is not `HASH` or `HASH:COUNT` with a 40-hex-digit SHA-1.
    #[error("line {0} of the breached-password file is not HASH[:COUNT] (40 hex digits)")]
    Line(usize),
}

fn prefix_of(hex: &str) -> Option<u64> {
    let hex = hex.get(..16)?;
    u64::from_str_radix(hex, 16).ok()
}

impl BreachList {
    /// Loads `HASH[:COUNT]` lines (blank lines ignored; hashes in any case).
    pub fn load(reader: impl BufRead) -> Result<Self, BreachListError> {
        let mut prefixes = Vec::new();
        for (i, line) in reader.lines().enumerate() {
            let line = line?;
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let hash = line.split(':').next().unwrap_or_default();
            if hash.len() != 40 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(BreachListError::Line(i + 1));
            }
            prefixes.push(prefix_of(hash).ok_or(BreachListError::Line(i + 1))?);
        }
        prefixes.sort_unstable();
        prefixes.dedup();
        prefixes.shrink_to_fit();
        Ok(Self { prefixes })
    }

    /// Number of distinct hashes held.
    pub fn len(&self) -> usize {
        self.prefixes.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.prefixes.is_empty()
    }

    /// Whether `sha1_hex` is in the list.
    pub fn contains(&self, sha1_hex: &str) -> bool {
        prefix_of(sha1_hex).is_some_and(|p| self.prefixes.binary_search(&p).is_ok())
    }
}

#[async_trait]
impl BreachChecker for BreachList {
    async fn is_breached(&self, sha1_hex: &str) -> Result<bool, BreachCheckUnavailable> {
        Ok(self.contains(sha1_hex))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_matches_the_known_answer() {
        // SHA-1("password"), as listed by breach corpora.
        assert_eq!(
            sha1_hex("password"),
            "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8"
        );
    }

    #[test]
    fn a_corpus_file_is_loaded_and_searched() {
        let file = "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:9659365\n\n\
                    7c4a8d09ca3762af61e59520943dc26494f8941b:4\n\
                    F7C3BC1D808E04732ADF679965CCC34CA7AE3441\n";
        let list = BreachList::load(file.as_bytes()).unwrap();
        assert_eq!(list.len(), 3);
        assert!(list.contains(&sha1_hex("password")));
        assert!(list.contains(&sha1_hex("123456")), "lower-case hashes too");
        assert!(list.contains(&sha1_hex("123456789")), "count optional");
        assert!(!list.contains(&sha1_hex("correct horse battery staple")));
        assert!(!list.contains("not hex"));
    }

    #[test]
    fn malformed_lines_are_refused_with_their_number() {
        for (file, line) in [("XYZ:1\n", 1), ("5BAA61E4:1\n", 1), ("\n\nnot-a-hash\n", 3)] {
            match BreachList::load(file.as_bytes()) {
                Err(BreachListError::Line(n)) => assert_eq!(n, line, "{file:?}"),
                other => panic!("{file:?}: {other:?}"),
            }
        }
    }
}
