//! Per-IP rate limits for every route group, and the `RateLimit-*` headers of
//! every limited response (rules keyed by identifier, session or user are
//! checked where those are known and recorded in the same [`RateLimitSlot`]).
//! The refresh group is the exception: its IP rules count only refreshes with
//! an unknown token, so the handler checks them (a known token counts against
//! its session; a backend refreshing for many users from one address is not
//! throttled as one client).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::client::client_ip;
use crate::config::RouteGroup;
use crate::ratelimit::{route_group, RateLimitSlot};
use crate::state::AppState;

/// Counts the request against the IP rules of its route group; refuses it with
/// `429` when over quota; writes the rate-limit headers on the response.
pub async fn middleware(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |m| m.as_str().to_owned(),
    );
    let Some(group) = route_group(request.method(), &path) else {
        return next.run(request).await;
    };
    let slot = RateLimitSlot::default();
    request.extensions_mut().insert(slot.clone());
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let ip = client_ip(peer, request.headers(), state.config.proxy_trust())
        .filter(|_| group != RouteGroup::Refresh);
    if let Some(ip) = ip {
        if let Err(refused) = state.rate_limits.check_ip(group, ip, Some(&slot)).await {
            let mut response = refused.into_response();
            slot.write_headers(response.headers_mut());
            return response;
        }
    }
    let mut response = next.run(request).await;
    slot.write_headers(response.headers_mut());
    response
}
