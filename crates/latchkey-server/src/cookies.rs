//! Cookie-mode browser sessions: the three cookies, reading them back, and the
//! CSRF defence for cookie-authenticated unsafe requests.
//!
//! Guarantees:
//! - the access and refresh tokens travel only in `HttpOnly`, `SameSite=Strict`,
//!   `Path=/` cookies (`Secure` unless explicitly turned off in dev);
//! - a request carrying the same cookie name twice (cookie tossing from a
//!   sibling domain) is treated as carrying none;
//! - an unsafe cookie-authenticated request passes only with an allowed
//!   `Origin` (or, without one, `Sec-Fetch-Site: same-origin`) **and** the
//!   session's CSRF token in `X-CSRF-Token`, compared in constant time.

use axum::http::{header, HeaderMap, HeaderValue, Method};
use latchkey_core::session::{csrf_token, verify_csrf_token};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::config::{Config, CookiesConfig, ResolvedSecrets};
use crate::error::{ApiError, CsrfCheck};

/// Header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Longest cookie value looked at (an access token is well under this).
const MAX_COOKIE_VALUE: usize = 4096;

/// Longest refused `Origin` written to the log.
const MAX_LOGGED_ORIGIN: usize = 200;

/// The cookie policy of one server, built once at start.
pub struct CookieSessions {
    config: CookiesConfig,
    /// Exact origins (`scheme://host[:port]`, lower case) allowed to make
    /// cookie-authenticated unsafe requests: the public URL's and CORS's.
    allowed_origins: Vec<String>,
    hmac_key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for CookieSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CookieSessions")
            .field("enabled", &self.config.enabled)
            .field("allowed_origins", &self.allowed_origins)
            .finish_non_exhaustive()
    }
}

/// The tokens of a cookie-mode sign-in, to be set as cookies.
#[derive(Debug)]
pub struct CookieTokens<'a> {
    /// The access token (session cookie).
    pub access_token: &'a str,
    /// Its lifetime in seconds.
    pub expires_in: i64,
    /// The refresh token (refresh cookie).
    pub refresh_token: &'a str,
    /// Its lifetime in seconds (also the CSRF cookie's).
    pub refresh_expires_in: i64,
    /// The session (the CSRF token is bound to it).
    pub session_id: Uuid,
}

impl CookieSessions {
    /// The policy for a validated configuration.
    pub fn new(config: &Config, secrets: &ResolvedSecrets) -> Self {
        let mut allowed_origins: Vec<String> = config
            .cors
            .allowed_origins
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|o| o != "*")
            .collect();
        if let Ok(url) = url::Url::parse(&config.effective_public_url()) {
            allowed_origins.push(url.origin().ascii_serialization().to_ascii_lowercase());
        }
        Self {
            config: config.cookies.clone(),
            allowed_origins,
            hmac_key: Zeroizing::new(secrets.hmac_key.expose().as_bytes().to_vec()),
        }
    }

    /// Whether cookie mode is on.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The CSRF token of a session.
    pub fn csrf_token(&self, session_id: Uuid) -> String {
        csrf_token(&self.hmac_key, session_id)
    }

    /// The access token from the session cookie, if exactly one is present.
    pub fn access_token<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        self.enabled()
            .then(|| read_cookie(headers, &self.config.session_name))
            .flatten()
    }

    /// The refresh token from the refresh cookie, if exactly one is present.
    pub fn refresh_token<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        self.enabled()
            .then(|| read_cookie(headers, &self.config.refresh_name))
            .flatten()
    }

    /// The lockout device token from the device cookie, if exactly one is present
    /// (read whether or not cookie mode is on).
    pub fn device_token<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        read_cookie(headers, &self.config.device_name)
    }

    /// `Set-Cookie` for a device token: HttpOnly, `SameSite=Strict`, 400 days
    /// (the longest browsers keep a cookie).
    pub fn device_cookie(&self, token: &str) -> Option<HeaderValue> {
        self.cookie(&self.config.device_name, token, 400 * 86_400, true)
    }

    /// Whether the request carries any of our cookies (so a response should
    /// clear them when the session ends).
    pub fn any_present(&self, headers: &HeaderMap) -> bool {
        [
            &self.config.session_name,
            &self.config.refresh_name,
            &self.config.csrf_name,
        ]
        .iter()
        .any(|name| !cookie_values(headers, name).is_empty())
    }

    /// `Set-Cookie` values starting a cookie-mode session.
    pub fn set_cookies(&self, tokens: &CookieTokens<'_>) -> Vec<HeaderValue> {
        let csrf = self.csrf_token(tokens.session_id);
        [
            (
                &self.config.session_name,
                tokens.access_token,
                tokens.expires_in,
                true,
            ),
            (
                &self.config.refresh_name,
                tokens.refresh_token,
                tokens.refresh_expires_in,
                true,
            ),
            (
                &self.config.csrf_name,
                csrf.as_str(),
                tokens.refresh_expires_in,
                false,
            ),
        ]
        .into_iter()
        .filter_map(|(name, value, max_age, http_only)| {
            self.cookie(name, value, max_age.max(0), http_only)
        })
        .collect()
    }

    /// The `Set-Cookie` value of the session (access-token) cookie alone.
    pub fn session_cookie(&self, access_token: &str, expires_in: i64) -> Option<HeaderValue> {
        self.cookie(
            &self.config.session_name,
            access_token,
            expires_in.max(0),
            true,
        )
    }

    /// `Set-Cookie` values deleting all three cookies.
    pub fn clear_cookies(&self) -> Vec<HeaderValue> {
        [
            (&self.config.session_name, true),
            (&self.config.refresh_name, true),
            (&self.config.csrf_name, false),
        ]
        .into_iter()
        .filter_map(|(name, http_only)| self.cookie(name, "", 0, http_only))
        .collect()
    }

    fn cookie(
        &self,
        name: &str,
        value: &str,
        max_age: i64,
        http_only: bool,
    ) -> Option<HeaderValue> {
        let secure = if self.config.secure { "; Secure" } else { "" };
        let http_only = if http_only { "; HttpOnly" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; Max-Age={max_age}{http_only}{secure}; SameSite=Strict"
        ))
        .ok()
    }

    /// Whether the request's `Origin` is the public URL's or one of
    /// `cors.allowed_origins` (without `Origin`: whether `Sec-Fetch-Site` is
    /// `same-origin`). Logs nothing; [`Self::check_origin`] is the refusal.
    pub fn origin_allowed(&self, headers: &HeaderMap) -> bool {
        match headers.get(header::ORIGIN) {
            Some(origin) => origin.to_str().is_ok_and(|o| {
                let o = o.trim().to_ascii_lowercase();
                self.allowed_origins.contains(&o)
            }),
            None => headers
                .get("sec-fetch-site")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"same-origin")),
        }
    }

    /// The origin check alone (cookie-mode login, where no session exists yet):
    /// refuses requests a cross-site page could have forged. A refused origin
    /// is logged at debug (bounded; a header value is visible ASCII).
    pub fn check_origin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.origin_allowed(headers) {
            return Ok(());
        }
        let origin = headers.get(header::ORIGIN).map(|o| {
            o.to_str().map_or("(not visible ASCII)", |o| {
                o.get(..MAX_LOGGED_ORIGIN).unwrap_or(o)
            })
        });
        tracing::debug!(
            origin = origin.unwrap_or("(none, and Sec-Fetch-Site is not same-origin)"),
            "cookie-authenticated request from an origin that is not allowed (see cors.allowed_origins)"
        );
        Err(ApiError::CsrfFailed(CsrfCheck::Origin))
    }

    /// Origin check plus the session's CSRF token in `X-CSRF-Token`.
    pub fn check_csrf(&self, headers: &HeaderMap, session_id: Uuid) -> Result<(), ApiError> {
        self.check_origin(headers)?;
        let mut presented = headers.get_all(CSRF_HEADER).iter();
        let token = match (presented.next(), presented.next()) {
            (Some(one), None) => one.to_str().unwrap_or_default(),
            _ => return Err(ApiError::CsrfFailed(CsrfCheck::Token)),
        };
        if verify_csrf_token(&self.hmac_key, session_id, token.trim()) {
            Ok(())
        } else {
            Err(ApiError::CsrfFailed(CsrfCheck::Token))
        }
    }
}

/// Whether a method can change state (needs CSRF protection).
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Every value of cookie `name` in the request's `Cookie` headers.
fn cookie_values<'h>(headers: &'h HeaderMap, name: &str) -> Vec<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (n, value) = pair.trim().split_once('=')?;
            (n.trim() == name).then(|| value.trim().trim_matches('"'))
        })
        .collect()
}

/// The value of cookie `name` when it appears exactly once, is non-empty and
/// bounded; `None` otherwise (absent, duplicated or oversized).
fn read_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    match cookie_values(headers, name).as_slice() {
        [v] if !v.is_empty() && v.len() <= MAX_COOKIE_VALUE => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn cookies_are_read_only_when_present_exactly_once() {
        let h = headers(&[("cookie", "a=1; lk=tok; b=2")]);
        assert_eq!(read_cookie(&h, "lk"), Some("tok"));
        let h = headers(&[("cookie", "lk=one"), ("cookie", "lk=two")]);
        assert_eq!(read_cookie(&h, "lk"), None, "tossed duplicate");
        let h = headers(&[("cookie", "lk=; x=1")]);
        assert_eq!(read_cookie(&h, "lk"), None);
        let long = format!("lk={}", "a".repeat(MAX_COOKIE_VALUE + 1));
        let h = headers(&[("cookie", long.as_str())]);
        assert_eq!(read_cookie(&h, "lk"), None);
        let h = headers(&[("cookie", "xlk=1; lkx=2")]);
        assert_eq!(read_cookie(&h, "lk"), None, "names match exactly");
    }

    #[test]
    fn safe_methods_are_the_read_only_ones() {
        for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(!is_unsafe(&m));
        }
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(is_unsafe(&m));
        }
    }
}
