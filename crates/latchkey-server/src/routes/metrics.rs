//! Prometheus exposition.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use sha2::Digest;

use crate::error::ApiError;
use crate::state::AppState;

/// Prometheus text exposition format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric in Prometheus text format. With `metrics.bearer_token` set,
/// only for `Authorization: Bearer <token>` (compared in constant time).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", body = String,
            content_type = "text/plain; version=0.0.4"),
        (status = 401, description = "`unauthorized`: `metrics.bearer_token` is set and the request does not carry it", body = crate::error::Problem, content_type = "application/problem+json"),
    ))]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(handle) = &state.metrics else {
        return ApiError::NotFound.into_response();
    };
    if let Some(token) = &state.secrets.metrics_bearer_token {
        if !bearer_matches(&headers, token.expose()) {
            return ApiError::Unauthorized.into_response();
        }
    }
    handle.run_upkeep();
    let mut response = handle.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROMETHEUS_TEXT),
    );
    response
}

/// Whether the request carries `Authorization: Bearer <expected>` (the
/// comparison takes the same time wherever the values differ).
fn bearer_matches(headers: &HeaderMap, expected: &str) -> bool {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let (a, b) = (
        sha2::Sha256::digest(presented.as_bytes()),
        sha2::Sha256::digest(expected.as_bytes()),
    );
    bool::from(subtle::ConstantTimeEq::ct_eq(a.as_slice(), b.as_slice()))
}
