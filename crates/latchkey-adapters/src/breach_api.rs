//! The range-API breached-password checker (the "Pwned Passwords" protocol):
//! only the first five hex characters of the SHA-1 leave the server
//! (k-anonymity), with `Add-Padding: true` so the response size says nothing
//! either.
//!
//! Guarantees: every call is bounded by the configured timeout and the response
//! by [`MAX_RESPONSE_BYTES`]; after a failure (timeout, refused, non-200) a
//! circuit breaker answers "unavailable" at once for [`BREAKER_OPEN`] instead
//! of calling again, so a dead service costs one timeout per period, not one
//! per sign-up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use latchkey_core::password::{BreachCheckUnavailable, BreachChecker, BreachClientError};

/// Largest range response read (real ones are about 40 KiB with padding).
pub const MAX_RESPONSE_BYTES: usize = 2 * 1024 * 1024;
/// How long the breaker stays open after a failure.
pub const BREAKER_OPEN: Duration = Duration::from_secs(30);

/// See the module documentation.
pub struct RangeApiChecker {
    client: reqwest::Client,
    base: String,
    started: Instant,
    open_until_ms: AtomicU64,
}

impl std::fmt::Debug for RangeApiChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeApiChecker")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl RangeApiChecker {
    /// A checker for `base` (e.g. `https://api.pwnedpasswords.com/range/`; the
    /// five-character prefix is appended) with a per-call `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, BreachClientError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("latchkey/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BreachClientError(Box::new(e)))?;
        let base = if base.ends_with('/') {
            base.to_owned()
        } else {
            format!("{base}/")
        };
        Ok(Self {
            client,
            base,
            started: Instant::now(),
            open_until_ms: AtomicU64::new(0),
        })
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn fail(&self, why: BreachCheckUnavailable) -> BreachCheckUnavailable {
        let until = self.elapsed_ms() + u64::try_from(BREAKER_OPEN.as_millis()).unwrap_or(0);
        self.open_until_ms.store(until, Ordering::Relaxed);
        why
    }

    async fn fetch(&self, prefix: &str) -> Result<String, BreachCheckUnavailable> {
        let mut response = self
            .client
            .get(format!("{}{prefix}", self.base))
            .header("Add-Padding", "true")
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    BreachCheckUnavailable::TimedOut
                } else {
                    BreachCheckUnavailable::RequestFailed
                }
            })?;
        if !response.status().is_success() {
            return Err(BreachCheckUnavailable::Status(response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|_| BreachCheckUnavailable::RequestFailed)?
        {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(BreachCheckUnavailable::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| BreachCheckUnavailable::NotText)
    }
}

#[async_trait]
impl BreachChecker for RangeApiChecker {
    async fn is_breached(&self, sha1_hex: &str) -> Result<bool, BreachCheckUnavailable> {
        if self.elapsed_ms() < self.open_until_ms.load(Ordering::Relaxed) {
            return Err(BreachCheckUnavailable::CircuitOpen);
        }
        if sha1_hex.len() != 40 {
            return Err(BreachCheckUnavailable::NotSha1);
        }
        let (prefix, suffix) = sha1_hex.split_at(5);
        let body = self.fetch(prefix).await.map_err(|why| self.fail(why))?;
        Ok(body.lines().any(|line| {
            let (candidate, count) = line.trim().split_once(':').unwrap_or((line.trim(), "1"));
            // Padding entries have a count of 0.
            candidate.eq_ignore_ascii_case(suffix) && count.trim() != "0"
        }))
    }
}
