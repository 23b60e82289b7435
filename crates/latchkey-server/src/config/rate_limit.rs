//! `[rate_limit]`: GCRA quotas per route group and key.

use serde::{Deserialize, Serialize};

use super::{Config, Problem};

/// Which requests a rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteGroup {
    /// `POST /v1/login` (and the later MFA / passkey sign-in steps).
    Login,
    /// `POST /v1/signup`.
    Signup,
    /// `POST /v1/token/refresh`.
    Refresh,
    /// Password and email flows: verification resend, password change (and
    /// forgot/reset/email change once they exist).
    Password,
    /// Authenticated reads (`GET` under `/v1/me`).
    Read,
    /// Every other route except `/healthz`, `/readyz` and `/metrics`.
    Default,
    /// Requests to an authenticated endpoint (any group) whose access token
    /// or session cookie is missing or refused: counted after authentication
    /// failed, so forged tokens cannot probe without limit.
    Unauthenticated,
}

/// What a rule counts per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKey {
    /// The client IP (socket peer, or forwarded via `trusted_proxies`).
    Ip,
    /// The normalized email in the request, whether or not an account has it.
    Identifier,
    /// The session of a refresh token.
    Session,
    /// The authenticated user.
    User,
}

/// One quota: at most `limit` requests per `window_seconds` for each key value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRule {
    /// Name in headers, metrics and logs (letters, digits, `-`, `_`).
    pub name: String,
    /// The requests it counts.
    pub route: RouteGroup,
    /// What it counts per.
    pub key: LimitKey,
    /// Requests per window (also the largest burst).
    pub limit: u32,
    /// The window in seconds.
    pub window_seconds: u64,
}

fn rule(
    name: &str,
    route: RouteGroup,
    key: LimitKey,
    limit: u32,
    window_seconds: u64,
) -> RateLimitRule {
    RateLimitRule {
        name: name.into(),
        route,
        key,
        limit,
        window_seconds,
    }
}

/// The built-in rules (replaced as a whole by `[[rate_limit.rules]]`).
pub fn default_rules() -> Vec<RateLimitRule> {
    use LimitKey::{Identifier, Ip, Session, User};
    use RouteGroup::{Default, Login, Password, Read, Refresh, Signup, Unauthenticated};
    vec![
        rule("login-ip", Login, Ip, 10, 60),
        // Above the lockout threshold (5): the 6th wrong password meets the
        // documented 423, not a 429.
        rule("login-identifier", Login, Identifier, 10, 60),
        rule("signup-ip", Signup, Ip, 5, 3600),
        rule("refresh-session", Refresh, Session, 30, 60),
        // Refreshes whose token is unknown (no session to count against).
        rule("refresh-unknown-ip", Refresh, Ip, 60, 60),
        rule("password-identifier", Password, Identifier, 5, 3600),
        // Spraying addresses (forgot, resend) or reset tokens from one client.
        rule("password-ip", Password, Ip, 20, 3600),
        rule("unauthenticated-ip", Unauthenticated, Ip, 60, 60),
        rule("read-user", Read, User, 600, 60),
        rule("default-ip", Default, Ip, 300, 60),
    ]
}

/// `[rate_limit]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Apply the rules at all.
    pub enabled: bool,
    /// When the shared (Redis) limiter is unreachable: `true` serves requests
    /// unlimited (with a warning and a metric), `false` answers 503.
    pub fail_open: bool,
    /// The quotas; setting any replaces all the defaults.
    pub rules: Vec<RateLimitRule>,
    /// IPv6 clients are counted by this prefix (a subscriber gets a whole
    /// /64), in rate limits and connection caps; IPv4 by the address.
    pub ipv6_prefix: u8,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            fail_open: true,
            rules: default_rules(),
            ipv6_prefix: 64,
        }
    }
}

/// Longest window a rule may have (a day).
pub const MAX_WINDOW_SECONDS: u64 = 86_400;

pub(super) fn check(cfg: &Config, problems: &mut Vec<Problem>) {
    if !(32..=128).contains(&cfg.rate_limit.ipv6_prefix) {
        problems.push(Problem::new(
            "rate_limit.ipv6_prefix",
            "must be between 32 and 128",
        ));
    }
    let mut names = std::collections::HashSet::new();
    for r in &cfg.rate_limit.rules {
        let valid_name = (1..=64).contains(&r.name.len())
            && r.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_name {
            problems.push(Problem::new(
                "rate_limit.rules",
                format!(
                    "rule name {:?}: use 1 to 64 letters, digits, - or _",
                    r.name
                ),
            ));
        }
        if !names.insert(r.name.as_str()) {
            problems.push(Problem::new(
                "rate_limit.rules",
                format!("rule name {:?} is used twice", r.name),
            ));
        }
        if r.limit == 0 || r.window_seconds == 0 || r.window_seconds > MAX_WINDOW_SECONDS {
            problems.push(Problem::new(
                "rate_limit.rules",
                format!(
                    "rule {:?}: need limit >= 1 and 1 <= window_seconds <= {MAX_WINDOW_SECONDS}",
                    r.name
                ),
            ));
        }
        let key_fits = match r.key {
            LimitKey::Ip => true,
            LimitKey::User => r.route != RouteGroup::Unauthenticated,
            LimitKey::Identifier => matches!(r.route, RouteGroup::Login | RouteGroup::Password),
            LimitKey::Session => r.route == RouteGroup::Refresh,
        };
        let user_fits = r.key != LimitKey::User || matches!(r.route, RouteGroup::Read);
        if !key_fits || !user_fits {
            problems.push(Problem::new(
                "rate_limit.rules",
                format!(
                    "rule {:?}: key {:?} does not exist for route {:?} (identifier: login, password; session: refresh; user: read)",
                    r.name, r.key, r.route
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(edit: impl FnOnce(&mut Config)) -> Vec<String> {
        let mut cfg = Config::default();
        edit(&mut cfg);
        let mut found = Vec::new();
        check(&cfg, &mut found);
        found.into_iter().map(|p| p.message).collect()
    }

    #[test]
    fn the_defaults_are_valid() {
        assert!(problems(|_| {}).is_empty());
    }

    #[test]
    fn bad_rules_are_refused_each_with_a_reason() {
        let bad = [
            rule("", RouteGroup::Login, LimitKey::Ip, 1, 60),
            rule("has space", RouteGroup::Login, LimitKey::Ip, 1, 60),
            rule("zero", RouteGroup::Login, LimitKey::Ip, 0, 60),
            rule(
                "long",
                RouteGroup::Login,
                LimitKey::Ip,
                1,
                MAX_WINDOW_SECONDS + 1,
            ),
            rule("mismatch", RouteGroup::Signup, LimitKey::Session, 1, 60),
            rule("user-on-login", RouteGroup::Login, LimitKey::User, 1, 60),
        ];
        for r in bad {
            let name = r.name.clone();
            assert_eq!(
                problems(|c| c.rate_limit.rules = vec![r]).len(),
                1,
                "{name:?}"
            );
        }
        let twice = vec![
            rule("a", RouteGroup::Login, LimitKey::Ip, 1, 60),
            rule("a", RouteGroup::Signup, LimitKey::Ip, 1, 60),
        ];
        assert_eq!(problems(|c| c.rate_limit.rules = twice).len(), 1);
    }
}
