//! `GET /v1/csrf`

use axum::extract::State;
use axum::http::HeaderMap;
use latchkey_core::auth::AuthError;
use serde::Serialize;
use uuid::Uuid;

use crate::error::{ApiError, Problem};
use crate::extract::auth::MAX_BEARER_LEN;
use crate::extract::ApiJson;
use crate::state::AppState;

/// `{"csrf_token": "..."}`
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CsrfBody {
    /// The session's CSRF token: send it as `X-CSRF-Token` on unsafe requests.
    pub csrf_token: String,
}

/// The CSRF token of the cookie-mode session, so a page that lost it (a
/// reloaded cross-origin app cannot read latchkey's CSRF cookie) gets it back.
///
/// Only the cookies count: the session cookie when its access token is valid,
/// else the refresh cookie when its token is usable (looked up, never rotated).
/// `Authorization` is ignored — bearer clients need no CSRF token — so without
/// a valid cookie the answer is `401 unauthorized`. A GET changes nothing, so it
/// needs no `X-CSRF-Token`; CORS decides which origins may read the answer.
#[utoipa::path(get, path = "/v1/csrf", tag = "auth",
    security(("cookie" = [])),
    responses(
        (status = 200, description = "The session's CSRF token (the one the sign-in answer gave)", body = CsrfBody),
        (status = 401, description = "`unauthorized`: no session or refresh cookie, or neither is valid (forged, expired, revoked)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn csrf(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<ApiJson<CsrfBody>, ApiError> {
    let session_id = cookie_session(&state, &headers)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    Ok(ApiJson(CsrfBody {
        csrf_token: state.cookies.csrf_token(session_id),
    }))
}

/// The live session named by the request's cookies, if any.
async fn cookie_session(state: &AppState, headers: &HeaderMap) -> Result<Option<Uuid>, ApiError> {
    if let Some(token) = state
        .cookies
        .access_token(headers)
        .filter(|t| t.len() <= MAX_BEARER_LEN)
    {
        match state.services.sessions.authenticate(token).await {
            Ok(principal) => {
                return Ok(state
                    .services
                    .sessions
                    .cookie_session(principal.session_id)
                    .await?)
            }
            // An expired (or otherwise refused) access cookie: the refresh
            // cookie may still name a live session.
            Err(AuthError::Unauthorized) => {}
            Err(e) => return Err(e.into()),
        }
    }
    match state.cookies.refresh_token(headers) {
        Some(token) => Ok(state.services.sessions.csrf_refresh_session(token).await?),
        None => Ok(None),
    }
}
