//! `Authenticated`: the caller's verified access token, from
//! `Authorization: Bearer` or from the session cookie (cookie mode).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use latchkey_core::auth::Principal;

use crate::config::{LimitKey, RouteGroup};
use crate::cookies::is_unsafe;
use crate::error::ApiError;
use crate::state::AppState;

/// Longest bearer token looked at; longer ones are refused unparsed.
pub const MAX_BEARER_LEN: usize = 4096;

/// A request authenticated by `Authorization: Bearer <access token>` or, when
/// no `Authorization` header is sent, by the session cookie: signature,
/// algorithm, issuer, audience, expiry, denylist and session liveness checked.
/// Anything else is `401 unauthorized`, the same for every cause. A
/// cookie-authenticated unsafe request (POST, PUT, PATCH, DELETE) must also pass
/// the CSRF check (allowed origin + the session's `X-CSRF-Token`), else
/// `403 csrf_failed` — checked after authentication, so an anonymous caller
/// learns nothing about CSRF.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Principal);

/// The bearer token of a request, if it has a well-formed one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= MAX_BEARER_LEN)
        .then_some(token)
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    /// A refused caller (`401`) also counts against the `unauthenticated`
    /// rules of its IP, so forged or stale tokens cannot be tried without
    /// limit on any authenticated endpoint (`429` once over).
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match authenticate(parts, state).await {
            Err(ApiError::Unauthorized) => {
                let client = crate::client::ClientInfo::from_request_parts(parts, state)
                    .await
                    .unwrap_or_else(|never| match never {});
                if let Some(ip) = client.ip {
                    state
                        .rate_limits
                        .check_ip(
                            RouteGroup::Unauthenticated,
                            ip,
                            parts.extensions.get::<crate::ratelimit::RateLimitSlot>(),
                        )
                        .await?;
                }
                Err(ApiError::Unauthorized)
            }
            other => other,
        }
    }
}

/// The caller, from the bearer token or the session cookie (see
/// [`Authenticated`]).
async fn authenticate(parts: &Parts, state: &AppState) -> Result<Authenticated, ApiError> {
    let (token, from_cookie) = presented_token(parts, state).ok_or(ApiError::Unauthorized)?;
    let principal = state.services.sessions.authenticate(token).await?;
    if from_cookie && is_unsafe(&parts.method) {
        state
            .cookies
            .check_csrf(&parts.headers, principal.session_id)?;
    }
    limit_reads(parts, state, &principal).await?;
    Ok(Authenticated(principal))
}

/// The access token a request presents: its bearer token when it sends
/// `Authorization` (`None` when that header is not a well-formed bearer
/// token: no fallback to the cookie), else its session cookie in cookie
/// mode; `true` with a cookie's. Not verified.
pub fn presented_token<'p>(parts: &'p Parts, state: &AppState) -> Option<(&'p str, bool)> {
    if parts.headers.contains_key(header::AUTHORIZATION) {
        return bearer(parts).map(|token| (token, false));
    }
    state
        .cookies
        .access_token(&parts.headers)
        .filter(|t| t.len() <= MAX_BEARER_LEN)
        .map(|token| (token, true))
}

/// Authenticated reads count per user (`read` rules).
async fn limit_reads(
    parts: &Parts,
    state: &AppState,
    principal: &Principal,
) -> Result<(), ApiError> {
    let path = parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| parts.uri.path(), axum::extract::MatchedPath::as_str);
    if crate::ratelimit::route_group(&parts.method, path) != Some(RouteGroup::Read) {
        return Ok(());
    }
    state
        .rate_limits
        .check(
            RouteGroup::Read,
            LimitKey::User,
            &principal.user_id.to_string(),
            parts.extensions.get::<crate::ratelimit::RateLimitSlot>(),
        )
        .await
}
