//! `Idempotency-Key` on unsafe `/v1` requests (API.md "Idempotency"): the
//! HTTP side of [`latchkey_core::idempotency`], which holds the rules.
//!
//! Guarantees:
//! - a request without the header costs one header lookup;
//! - a malformed key (empty, over 255 bytes, not visible ASCII, or sent
//!   twice) is `400 malformed_request` before anything runs;
//! - the principal is the signed-in user when the request presents a valid
//!   access token (bearer or session cookie), else the client address
//!   (`proxy.trusted` decides which); keys of different principals never meet;
//! - endpoints that issue credentials ignore the header ([`applies`]);
//! - an answer that sets a cookie, or whose body is not UTF-8, is never kept;
//! - a request dropped before it finished (timeout, client gone, panic) gives
//!   its key up, so the client's retry runs.

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use latchkey_core::idempotency::{Begin, Claim, IdempotencyKey, KeptResponse, KeyedRequest, Owner};

use crate::client::client_ip;
use crate::error::ApiError;
use crate::extract::auth::presented_token;
use crate::state::AppState;

/// The request header naming the key.
pub const KEY_HEADER: HeaderName = HeaderName::from_static("idempotency-key");
/// Set to `true` on an answer sent again from a kept one.
pub const REPLAYED_HEADER: HeaderName = HeaderName::from_static("idempotent-replayed");

/// Whether `method` on the route `path` honours `Idempotency-Key`: every
/// unsafe method under `/v1` but on the endpoints that issue credentials
/// (sign-up, every sign-in step, refresh, OAuth, password reset), hand out
/// second-factor secrets (a TOTP seed, recovery codes: credentials too) or
/// only read (introspection). Their answers are never stored.
pub fn applies(method: &Method, path: &str) -> bool {
    let unsafe_method = matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let issues_credentials = path == "/v1/signup"
        || path.starts_with("/v1/login")
        || path == "/v1/token/refresh"
        || path.starts_with("/v1/oauth/")
        || path == "/v1/password/reset"
        || path == "/v1/introspect"
        || (*method == Method::POST && path.starts_with("/v1/me/mfa/"));
    unsafe_method && path.starts_with("/v1/") && !issues_credentials
}

/// Runs a keyed request at most once per principal, method, target and key;
/// answers repeats from the kept answer (see the module guarantees).
pub async fn middleware(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let mut keys = request.headers().get_all(KEY_HEADER).iter();
    let Some(raw) = keys.next() else {
        return next.run(request).await;
    };
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| request.uri().path(), MatchedPath::as_str);
    if !applies(request.method(), path) {
        return next.run(request).await;
    }
    let key = match (IdempotencyKey::parse(raw.as_bytes()), keys.next()) {
        (Ok(key), None) => key,
        (Err(e), _) => return ApiError::MalformedRequest(e.to_string()).into_response(),
        (Ok(_), Some(_)) => {
            return ApiError::MalformedRequest(
                "Send one Idempotency-Key header, not several.".into(),
            )
            .into_response()
        }
    };
    let body = std::mem::take(request.body_mut());
    let body = match crate::extract::json::read_body(Request::new(body), &()).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let (parts, _emptied) = request.into_parts();
    let Some(owner) = owner(&parts, &state).await else {
        return next.run(Request::from_parts(parts, Body::from(body))).await;
    };
    let target = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path(), |pq| pq.as_str());
    let keyed = KeyedRequest {
        owner,
        method: parts.method.as_str(),
        target,
        key: &key,
        body: &body,
    };
    let claim = match state.idempotency.begin(&keyed).await {
        Ok(Begin::Run(claim)) => claim,
        Ok(Begin::Replay(kept)) => return replay(kept),
        Ok(Begin::Conflict(conflict)) => {
            return ApiError::IdempotencyConflict(conflict).into_response()
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let held = Held {
        state: state.clone(),
        claim: Some(claim.clone()),
    };
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let (answer, body) = response.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        drop(held);
        return ApiError::Internal("the answer body could not be read".into()).into_response();
    };
    let outcome = match kept(&answer, &body) {
        Some(kept) => state.idempotency.finish(claim, &kept).await,
        None => state.idempotency.release(claim).await,
    };
    held.done();
    if let Err(e) = outcome {
        // The answer leaves anyway: the request ran. Its key stays held until
        // the run counts as abandoned.
        tracing::warn!(error = %e, "idempotency record not completed");
    }
    Response::from_parts(answer, Body::from(body))
}

/// The principal of a keyed request: the user its access token names, else
/// the client address (`None` only without a peer address, which a listener
/// always has).
async fn owner(parts: &Parts, state: &AppState) -> Option<Owner> {
    if let Some((token, _)) = presented_token(parts, state) {
        if let Ok(principal) = state.services.sessions.authenticate(token).await {
            return Some(Owner::User(principal.user_id));
        }
    }
    let peer = parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    client_ip(peer, &parts.headers, state.config.proxy_trust()).map(Owner::Client)
}

/// What is kept of an answer; `None` when it must not be (it sets a cookie,
/// or its body is not text).
fn kept(head: &axum::http::response::Parts, body: &[u8]) -> Option<KeptResponse> {
    if head.headers.contains_key(header::SET_COOKIE) {
        return None;
    }
    let text = |name: header::HeaderName| {
        head.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Some(KeptResponse {
        status: head.status.as_u16(),
        content_type: text(header::CONTENT_TYPE),
        location: text(header::LOCATION),
        body: String::from_utf8(body.to_vec()).ok()?,
    })
}

/// The kept answer, sent again with `Idempotent-Replayed: true`.
fn replay(kept: KeptResponse) -> Response {
    let status = StatusCode::from_u16(kept.status).unwrap_or(StatusCode::OK);
    let mut response = (status, kept.body).into_response();
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    for (name, value) in [
        (header::CONTENT_TYPE, kept.content_type),
        (header::LOCATION, kept.location),
    ] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, value);
        }
    }
    headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

/// A claim in use: dropped before [`Held::done`] (the request was cancelled
/// or panicked), it releases the key in the background.
struct Held {
    state: AppState,
    claim: Option<Claim>,
}

impl Held {
    fn done(mut self) {
        self.claim = None;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            let state = self.state.clone();
            state.services.background.spawn("idempotency release", {
                let state = state.clone();
                async move {
                    if let Err(e) = state.idempotency.release(claim).await {
                        tracing::warn!(error = %e, "idempotency key not released");
                    }
                }
            });
        }
    }
}
