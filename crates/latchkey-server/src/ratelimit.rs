//! Rate limits per route group and key (`[rate_limit]`), their `429` answer and
//! their `RateLimit-Policy` / `RateLimit` headers (IETF httpapi draft).
//!
//! Guarantees:
//! - keys are hashed before they reach the limiter (no email or IP in clear in
//!   memory dumps or in Redis);
//! - a refused request is `429 rate_limited` with `Retry-After` and
//!   `retry_after`; it is counted in `latchkey_rate_limited_total{rule}`;
//! - a limiter that cannot answer never causes a 500: the request is served
//!   (`fail_open`, the default) or refused with `503 unavailable`.

use std::sync::{Arc, Mutex, PoisonError};

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use latchkey_core::ratelimit::{Decision, Quota, RateLimiter};
use sha2::{Digest, Sha256};

use crate::config::{LimitKey, RateLimitConfig, RateLimitRule, RouteGroup};
use crate::error::ApiError;

/// The `RateLimit-Policy` header.
pub const POLICY_HEADER: HeaderName = HeaderName::from_static("ratelimit-policy");
/// The `RateLimit` header.
pub const STATE_HEADER: HeaderName = HeaderName::from_static("ratelimit");

/// The decisions taken for one request, written as headers on its response.
#[derive(Debug, Clone, Default)]
pub struct RateLimitSlot(Arc<Mutex<Vec<(String, u64, Decision)>>>);

impl RateLimitSlot {
    fn record(&self, rule: &RateLimitRule, decision: Decision) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push((
            rule.name.clone(),
            rule.window_seconds,
            decision,
        ));
    }

    /// Writes `RateLimit-Policy` (every quota applied) and `RateLimit` (what is
    /// left of each) onto `headers`.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let taken = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if taken.is_empty() {
            return;
        }
        let policy: Vec<String> = taken
            .iter()
            .map(|(name, window, d)| format!("\"{name}\";q={};w={window}", d.limit))
            .collect();
        let state: Vec<String> = taken
            .iter()
            .map(|(name, _, d)| {
                let reset = ceil_seconds(d.reset_after);
                format!("\"{name}\";r={};t={reset}", d.remaining)
            })
            .collect();
        if let Ok(v) = HeaderValue::from_str(&policy.join(", ")) {
            headers.insert(POLICY_HEADER, v);
        }
        if let Ok(v) = HeaderValue::from_str(&state.join(", ")) {
            headers.insert(STATE_HEADER, v);
        }
    }
}

fn ceil_seconds(d: time::Duration) -> u64 {
    let micros = u64::try_from(d.whole_microseconds().max(0)).unwrap_or(u64::MAX);
    micros.div_ceil(1_000_000)
}

/// The rules of this server and the limiter that counts them.
pub struct RateLimits {
    config: RateLimitConfig,
    limiter: Arc<dyn RateLimiter>,
    backend: &'static str,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("enabled", &self.config.enabled)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    /// Rules from `config`, counted by `limiter` (`backend` names it in logs).
    pub fn new(
        config: RateLimitConfig,
        limiter: Arc<dyn RateLimiter>,
        backend: &'static str,
    ) -> Self {
        Self {
            config,
            limiter,
            backend,
        }
    }

    /// The limits of `config`: shared through Redis when it is configured (every
    /// node draws from one budget), else counted in process.
    pub fn from_config(
        config: &crate::config::Config,
        redis: Option<&Arc<latchkey_adapters::redis::Redis>>,
        clock: Arc<dyn latchkey_core::clock::Clock>,
    ) -> Self {
        let (limiter, backend): (Arc<dyn RateLimiter>, _) = match redis {
            Some(redis) => (
                Arc::new(latchkey_adapters::ratelimit_redis::RedisLimiter::new(
                    Arc::clone(redis),
                    &config.redis.key_prefix,
                )),
                "redis",
            ),
            None => (
                Arc::new(latchkey_core::ratelimit::LocalLimiter::new(
                    clock,
                    Self::longest_window(&config.rate_limit),
                )),
                "local",
            ),
        };
        Self::new(config.rate_limit.clone(), limiter, backend)
    }

    /// The longest window of any rule (how long an idle key matters).
    pub fn longest_window(config: &RateLimitConfig) -> std::time::Duration {
        std::time::Duration::from_secs(
            config
                .rules
                .iter()
                .map(|r| r.window_seconds)
                .max()
                .unwrap_or(60),
        )
    }

    /// Counts the request against every rule for `route` keyed by `key`, with
    /// `value` the key's value (IP, normalized email, session or user id).
    /// Stops at the first refusal. Decisions are recorded in `slot` for the
    /// response headers.
    pub async fn check(
        &self,
        route: RouteGroup,
        key: LimitKey,
        value: &str,
        slot: Option<&RateLimitSlot>,
    ) -> Result<(), ApiError> {
        if !self.config.enabled {
            return Ok(());
        }
        for rule in self
            .config
            .rules
            .iter()
            .filter(|r| r.route == route && r.key == key)
        {
            let quota = Quota {
                limit: rule.limit,
                window: time::Duration::seconds(
                    i64::try_from(rule.window_seconds).unwrap_or(i64::MAX),
                ),
            };
            let digest = Sha256::new()
                .chain_update(rule.name.as_bytes())
                .chain_update([0])
                .chain_update(value.as_bytes())
                .finalize();
            let limiter_key = format!("{}:{}", rule.name, hex16(&digest));
            let decision = match self.limiter.check(&limiter_key, &quota).await {
                Ok(d) => d,
                Err(e) => {
                    metrics::counter!("latchkey_rate_limiter_errors_total", "backend" => self.backend)
                        .increment(1);
                    if self.config.fail_open {
                        tracing::warn!(error = %e, rule = %rule.name, "rate limiter unavailable: request served unlimited");
                        continue;
                    }
                    tracing::warn!(error = %e, rule = %rule.name, "rate limiter unavailable: request refused");
                    return Err(ApiError::Unavailable("rate limiter"));
                }
            };
            if let Some(slot) = slot {
                slot.record(rule, decision);
            }
            if !decision.allowed {
                metrics::counter!("latchkey_rate_limited_total", "rule" => rule.name.clone())
                    .increment(1);
                tracing::info!(rule = %rule.name, "rate limited");
                return Err(ApiError::RateLimited {
                    retry_after: ceil_seconds(decision.retry_after).max(1),
                });
            }
        }
        Ok(())
    }
}

fn hex16(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .take(16)
        .fold(String::with_capacity(32), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The slot of a request, when the rate-limit middleware ran (handlers take
/// `Option<Extension<RateLimitSlot>>`).
pub type SlotExtension = Option<axum::Extension<RateLimitSlot>>;

/// The slot inside a [`SlotExtension`].
pub fn slot_of(ext: &SlotExtension) -> Option<&RateLimitSlot> {
    ext.as_ref().map(|axum::Extension(slot)| slot)
}

/// The route group of a request (`None`: never limited — probes and metrics).
pub fn route_group(method: &Method, path: &str) -> Option<RouteGroup> {
    match (method, path) {
        (_, "/healthz" | "/readyz" | "/metrics") => None,
        (&Method::POST, p) if p == "/v1/login" || p.starts_with("/v1/login/") => {
            Some(RouteGroup::Login)
        }
        (&Method::POST, "/v1/signup") => Some(RouteGroup::Signup),
        (&Method::POST, "/v1/token/refresh") => Some(RouteGroup::Refresh),
        (
            &Method::POST,
            "/v1/email/verify/resend"
            | "/v1/password/forgot"
            | "/v1/password/reset"
            | "/v1/me/password"
            | "/v1/me/email",
        ) => Some(RouteGroup::Password),
        (&Method::GET | &Method::HEAD, p) if p == "/v1/me" || p.starts_with("/v1/me/") => {
            Some(RouteGroup::Read)
        }
        _ => Some(RouteGroup::Default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fall_into_their_groups() {
        let cases = [
            (Method::POST, "/v1/login", Some(RouteGroup::Login)),
            (Method::POST, "/v1/login/mfa", Some(RouteGroup::Login)),
            (Method::POST, "/v1/signup", Some(RouteGroup::Signup)),
            (Method::POST, "/v1/token/refresh", Some(RouteGroup::Refresh)),
            (
                Method::POST,
                "/v1/email/verify/resend",
                Some(RouteGroup::Password),
            ),
            (Method::POST, "/v1/me/password", Some(RouteGroup::Password)),
            (Method::GET, "/v1/me", Some(RouteGroup::Read)),
            (Method::GET, "/v1/me/sessions", Some(RouteGroup::Read)),
            (Method::PATCH, "/v1/me", Some(RouteGroup::Default)),
            (
                Method::GET,
                "/.well-known/jwks.json",
                Some(RouteGroup::Default),
            ),
            (Method::GET, "/v1/loginx", Some(RouteGroup::Default)),
            (Method::GET, "/healthz", None),
            (Method::GET, "/readyz", None),
            (Method::GET, "/metrics", None),
        ];
        for (method, path, group) in cases {
            assert_eq!(route_group(&method, path), group, "{method} {path}");
        }
    }

    #[test]
    fn headers_list_every_quota_applied() {
        let slot = RateLimitSlot::default();
        let rule = |name: &str, limit, window| RateLimitRule {
            name: name.into(),
            route: RouteGroup::Login,
            key: LimitKey::Ip,
            limit,
            window_seconds: window,
        };
        let d = |limit, remaining, reset_ms| Decision {
            allowed: true,
            limit,
            remaining,
            reset_after: time::Duration::milliseconds(reset_ms),
            retry_after: time::Duration::ZERO,
        };
        slot.record(&rule("login-ip", 10, 60), d(10, 9, 6000));
        slot.record(&rule("login-identifier", 5, 60), d(5, 4, 11_500));
        let mut headers = HeaderMap::new();
        slot.write_headers(&mut headers);
        assert_eq!(
            headers[&POLICY_HEADER],
            "\"login-ip\";q=10;w=60, \"login-identifier\";q=5;w=60"
        );
        assert_eq!(
            headers[&STATE_HEADER],
            "\"login-ip\";r=9;t=6, \"login-identifier\";r=4;t=12"
        );
    }
}
