//! `POST /v1/token/refresh`

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use latchkey_core::auth::Refreshed;
use serde::Deserialize;

use super::{clear_cookies, issued_response, DeliveryMode, TokenResponse};
use crate::client::ClientInfo;
use crate::config::{LimitKey, RouteGroup};
use crate::error::{ApiError, Problem};
use crate::extract::OptionalJson;
use crate::state::AppState;

/// Refresh body. Browsers in cookie mode send no body (or `{}`): the refresh
/// token comes from the refresh cookie, with `X-CSRF-Token`.
#[derive(Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    /// The current refresh token (`lk_rt_...`); it stops working now.
    pub refresh_token: Option<String>,
}

/// Exchanges a refresh token for a new access token and a new refresh token.
/// Presenting an already-used token revokes the whole session.
///
/// The token comes from the body (token mode) or, without one, from the refresh
/// cookie (cookie mode: allowed origin and `X-CSRF-Token` required, new cookies
/// set; a failed refresh deletes the cookies).
#[utoipa::path(post, path = "/v1/token/refresh", tag = "auth",
    request_body(content = RefreshBody, description = "`{refresh_token}`; empty or `{}` in cookie mode"),
    params(("X-CSRF-Token" = Option<String>, Header, description = "Cookie mode: the session's CSRF token")),
    responses(
        (status = 200, description = "New token pair (cookie mode: new cookies, `csrf_token` instead of `refresh_token`)", body = TokenResponse),
        (status = 401, description = "`invalid_token`: missing, unknown, used, revoked or expired", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`csrf_failed`: cookie mode without a valid CSRF token or allowed origin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    slot: crate::ratelimit::SlotExtension,
    OptionalJson(body): OptionalJson<RefreshBody>,
) -> Result<Response, ApiError> {
    // Per session: a stolen token replayed in a loop is slowed down too. An
    // unknown token (or none) counts against the client's address instead.
    let presented = body
        .refresh_token
        .as_deref()
        .or_else(|| state.cookies.refresh_token(&headers));
    let cookie = body.refresh_token.is_none();
    let session = match presented {
        Some(token) => {
            state
                .services
                .sessions
                .refresh_token_session(token, cookie)
                .await?
        }
        None => None,
    };
    let slot = crate::ratelimit::slot_of(&slot);
    match (session, client.ip) {
        (Some(session_id), _) => {
            state
                .rate_limits
                .check(
                    RouteGroup::Refresh,
                    LimitKey::Session,
                    &session_id.to_string(),
                    slot,
                )
                .await?;
        }
        (None, Some(ip)) => {
            state
                .rate_limits
                .check_ip(RouteGroup::Refresh, ip, slot)
                .await?;
        }
        (None, None) => {}
    }
    if let Some(token) = body.refresh_token {
        let issued = state
            .services
            .sessions
            .refresh(&token, &client.context())
            .await?;
        return Ok(issued_response(&state.cookies, issued, DeliveryMode::Token));
    }
    let Some(token) = state.cookies.refresh_token(&headers) else {
        return Err(ApiError::InvalidToken);
    };
    // The CSRF token is bound to the session: find it without spending the
    // token. An unknown or spent token skips the check and fails below (a spent
    // one still triggers reuse detection).
    if let Some(session_id) = session {
        state.cookies.check_csrf(&headers, session_id)?;
    } else {
        state.cookies.check_origin(&headers)?;
    }
    match state
        .services
        .sessions
        .refresh_cookie(token, &client.context())
        .await
    {
        Ok(Refreshed::Rotated(issued)) => Ok(issued_response(
            &state.cookies,
            issued,
            DeliveryMode::Cookie,
        )),
        // Another tab's refresh won a moment ago: a fresh access token, and
        // the refresh cookie that tab set is left alone (nothing deleted).
        Ok(Refreshed::Concurrent(access)) => Ok(concurrent_response(&state.cookies, access)),
        Err(e) => Ok(clear_cookies(
            &state.cookies,
            ApiError::from(e).into_response(),
        )),
    }
}

/// The answer to a refresh that lost to a concurrent one of the same browser:
/// the `TokenResponse` of cookie mode with a new access token, setting the
/// session cookie only (the refresh and CSRF cookies the winner set stay).
fn concurrent_response(
    cookies: &crate::cookies::CookieSessions,
    access: latchkey_core::auth::AccessOnly,
) -> Response {
    let session_cookie = cookies.session_cookie(&access.access_token, access.expires_in);
    let body = TokenResponse {
        access_token: access.access_token,
        token_type: "Bearer",
        expires_in: access.expires_in,
        refresh_token: None,
        refresh_expires_in: access.refresh_expires_in,
        session_id: access.session_id,
        user: super::UserBody::from(&access.user),
        csrf_token: Some(cookies.csrf_token(access.session_id)),
    };
    let mut response = crate::extract::ApiJson(body).into_response();
    if let Some(value) = session_cookie {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, value);
    }
    response
}
