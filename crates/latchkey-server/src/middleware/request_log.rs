//! The request log: one `info` line per request, written inside the request's
//! span (so it carries `request_id` and `method`, in both log formats) with the
//! route template, status, latency and the client IP masked per the PII rules
//! ([`crate::client::masked_ip`]). Never a query string, header, body or token.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::client::{client_ip, masked_ip};
use crate::state::AppState;

/// Longest raw path logged for a request that matched no route.
const MAX_LOGGED_PATH: usize = 200;

/// Middleware writing the request line once the response is ready.
pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !tracing::enabled!(tracing::Level::INFO) {
        // Logs at warn or above: nothing to compute for a line never written.
        return next.run(request).await;
    }
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    // Only for unmatched requests, where no template exists: the path alone
    // (a URI path is visible ASCII), bounded.
    let unmatched_path = route.is_none().then(|| {
        let path = request.uri().path();
        path.get(..MAX_LOGGED_PATH).unwrap_or(path).to_owned()
    });
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let ip = client_ip(peer, request.headers(), state.config.proxy_trust()).map(masked_ip);
    let response = next.run(request).await;
    let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
    let latency_ms = f64::from(micros) / 1000.0;
    let client_ip = ip.map_or_else(|| "-".to_owned(), |ip| ip.to_string());
    let status = response.status().as_u16();
    match unmatched_path {
        None => tracing::info!(
            route = route.as_deref().unwrap_or_default(),
            status,
            latency_ms,
            client_ip,
            "request completed"
        ),
        Some(path) => tracing::info!(
            route = "unmatched",
            path,
            status,
            latency_ms,
            client_ip,
            "request completed"
        ),
    }
    response
}
