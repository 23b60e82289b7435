//! Access-token claims and the settings they are issued and checked with.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use uuid::{NoContext, Timestamp, Uuid};

/// The `typ` header of every access token (RFC 9068).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// Default lifetime of an access token: 15 minutes.
pub const DEFAULT_TTL: Duration = Duration::minutes(15);
/// Default clock-skew allowance for `exp`/`nbf`.
pub const DEFAULT_LEEWAY: Duration = Duration::seconds(60);
/// Most leeway ever applied to `exp`/`nbf`, whatever the settings say.
pub const MAX_LEEWAY: Duration = Duration::seconds(60);

/// Claims of an access token (API.md "Tokens and sessions"). Times are unix
/// seconds; `sub` and `sid` are UUIDs as strings; `jti` is a UUIDv7.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer: the server's public URL.
    pub iss: String,
    /// User id.
    pub sub: String,
    /// Audience (a single string, never an array).
    pub aud: String,
    /// Expiry (unix seconds).
    pub exp: i64,
    /// Issued at (unix seconds).
    pub iat: i64,
    /// Not before (unix seconds).
    pub nbf: i64,
    /// Token id (UUIDv7), for the denylist.
    pub jti: String,
    /// Session id.
    pub sid: String,
    /// When the session authenticated (unix seconds).
    pub auth_time: i64,
    /// Authentication methods (`pwd`, `otp`, ...).
    pub amr: Vec<String>,
    /// Roles.
    pub roles: Vec<String>,
}

/// Issuer, audience, lifetime and leeway. Verification never applies more than
/// [`MAX_LEEWAY`] (60 s), nor a negative leeway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// Expected and issued `iss`.
    pub issuer: String,
    /// Expected and issued `aud`.
    pub audience: String,
    /// Lifetime of a new token (default [`DEFAULT_TTL`]).
    pub ttl: Duration,
    /// Clock-skew allowance for `exp`/`nbf` (default [`DEFAULT_LEEWAY`]), capped
    /// at [`MAX_LEEWAY`].
    pub leeway: Duration,
}

impl TokenSettings {
    /// Settings with the default lifetime (15 min) and leeway (60 s).
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            ttl: DEFAULT_TTL,
            leeway: DEFAULT_LEEWAY,
        }
    }

    /// The leeway actually applied, in seconds: within `0..=60`.
    pub fn effective_leeway_seconds(&self) -> i64 {
        self.leeway
            .clamp(Duration::ZERO, MAX_LEEWAY)
            .whole_seconds()
    }
}

/// Claims for a new token: `iss`/`aud` from the settings, `iat = nbf = now`,
/// `exp = now + ttl` (saturating, never panicking), and a fresh UUIDv7 `jti`
/// whose timestamp is the injected `now` (the wall clock is not read).
pub fn new_claims(
    settings: &TokenSettings,
    now: OffsetDateTime,
    sub: Uuid,
    sid: Uuid,
    auth_time: OffsetDateTime,
    amr: Vec<String>,
    roles: Vec<String>,
) -> AccessClaims {
    let now_s = now.unix_timestamp();
    AccessClaims {
        iss: settings.issuer.clone(),
        sub: sub.to_string(),
        aud: settings.audience.clone(),
        exp: now_s.saturating_add(settings.ttl.whole_seconds()),
        iat: now_s,
        nbf: now_s,
        jti: new_jti(now).to_string(),
        sid: sid.to_string(),
        auth_time: auth_time.unix_timestamp(),
        amr,
        roles,
    }
}

/// A UUIDv7 stamped with `now` (times before 1970 stamp as the epoch); the
/// remaining 74 bits are random.
fn new_jti(now: OffsetDateTime) -> Uuid {
    let seconds = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    Uuid::new_v7(Timestamp::from_unix(NoContext, seconds, now.nanosecond()))
}
