//! Rate limits per route group and key (`[rate_limit]`), their `429` answer and
//! their `RateLimit-Policy` / `RateLimit` headers (IETF httpapi draft).
//!
//! Guarantees:
//! - keys are hashed before they reach the limiter (no email or IP in clear in
//!   memory dumps or in Redis);
//! - a refused request is `429 rate_limited` with `Retry-After` and
//!   `retry_after`; it is counted in `latchkey_rate_limited_total{rule}`;
//! - a limiter that cannot answer never causes a 500, and never lifts the
//!   limits on guessing credentials: the login (with its MFA and passkey
//!   steps) and password groups are then counted by this node's in-process
//!   limiter, under the same rules; the other groups are served (`fail_open`,
//!   the default) or refused with `503 unavailable`. Either way it is counted
//!   in `latchkey_rate_limiter_errors_total{backend}` (and the local counting
//!   in `latchkey_rate_limiter_fallback_total{rule}`), and logged at most once
//!   per [`TROUBLE_INTERVAL`] with a count, never once per request.

use std::sync::{Arc, Mutex, PoisonError};

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method};
use latchkey_adapters::log_every::{LogEvery, TROUBLE_INTERVAL};
use latchkey_core::ratelimit::{Decision, LimiterUnavailable, LocalLimiter, Quota, RateLimiter};
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
    /// Counts the credential groups while a shared `limiter` cannot answer.
    fallback: Option<LocalLimiter>,
    unavailable_log: LogEvery,
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
    /// `fallback` counts the credential groups when `limiter` cannot answer
    /// (give one for any limiter that can fail).
    pub fn new(
        config: RateLimitConfig,
        limiter: Arc<dyn RateLimiter>,
        backend: &'static str,
        fallback: Option<LocalLimiter>,
    ) -> Self {
        Self {
            config,
            limiter,
            backend,
            fallback,
            unavailable_log: LogEvery::new(TROUBLE_INTERVAL),
        }
    }

    /// The limits of `config`: shared through Redis when it is configured (every
    /// node draws from one budget), else counted in process.
    pub fn from_config(
        config: &crate::config::Config,
        redis: Option<&Arc<latchkey_adapters::redis::Redis>>,
        clock: Arc<dyn latchkey_core::clock::Clock>,
    ) -> Self {
        let local = LocalLimiter::new(clock, Self::longest_window(&config.rate_limit));
        let (limiter, backend, fallback): (Arc<dyn RateLimiter>, _, _) = match redis {
            Some(redis) => (
                Arc::new(latchkey_adapters::ratelimit_redis::RedisLimiter::new(
                    Arc::clone(redis),
                    &config.redis.key_prefix,
                )),
                "redis",
                Some(local),
            ),
            None => (Arc::new(local), "local", None),
        };
        Self::new(config.rate_limit.clone(), limiter, backend, fallback)
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

    /// Counts the request against the IP rules of `route`, keyed by the
    /// client's network (IPv4 address; IPv6 `/rate_limit.ipv6_prefix`).
    pub async fn check_ip(
        &self,
        route: RouteGroup,
        ip: std::net::IpAddr,
        slot: Option<&RateLimitSlot>,
    ) -> Result<(), ApiError> {
        let network = crate::client::client_network(ip, self.config.ipv6_prefix);
        self.check(route, LimitKey::Ip, &network.to_string(), slot)
            .await
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
                Err(e) => match self
                    .when_unavailable(rule, &limiter_key, &quota, &e)
                    .await?
                {
                    Some(d) => d,
                    None => continue,
                },
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

impl RateLimits {
    /// The decision for `rule` when the limiter could not answer (`e`): the
    /// fallback's for the credential groups; for the others none (served
    /// unlimited, `fail_open`) or a `503`.
    async fn when_unavailable(
        &self,
        rule: &RateLimitRule,
        limiter_key: &str,
        quota: &Quota,
        e: &LimiterUnavailable,
    ) -> Result<Option<Decision>, ApiError> {
        metrics::counter!("latchkey_rate_limiter_errors_total", "backend" => self.backend)
            .increment(1);
        if let Some(occurrences) = self.unavailable_log.hit() {
            if self.config.fail_open {
                tracing::warn!(error = %e, backend = self.backend, occurrences, "rate limiter unavailable: login and password limits counted on this node, other requests served unlimited");
            } else {
                tracing::warn!(error = %e, backend = self.backend, occurrences, "rate limiter unavailable: login and password limits counted on this node, other requests refused");
            }
        }
        let fallback = self
            .fallback
            .as_ref()
            .filter(|_| guards_credentials(rule.route));
        if let Some(local) = fallback {
            metrics::counter!("latchkey_rate_limiter_fallback_total", "rule" => rule.name.clone())
                .increment(1);
            // The in-process limiter has no backend that can fail.
            return local
                .check(limiter_key, quota)
                .await
                .map(Some)
                .map_err(|_| ApiError::Unavailable("rate limiter"));
        }
        if self.config.fail_open {
            return Ok(None);
        }
        Err(ApiError::Unavailable("rate limiter"))
    }
}

/// Whether `route` guards credentials (passwords, second factors, passkeys,
/// reset and verification tokens): its limits never lift when the shared
/// limiter is down.
fn guards_credentials(route: RouteGroup) -> bool {
    matches!(route, RouteGroup::Login | RouteGroup::Password)
}

fn hex16(bytes: &[u8]) -> String {
    latchkey_core::hex::encode(&bytes[..bytes.len().min(16)])
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
