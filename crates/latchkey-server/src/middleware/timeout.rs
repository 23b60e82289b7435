//! Bounds how long a request may run: past `http.request_timeout_ms` the client gets
//! `503 unavailable` and the handler's future is dropped.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Middleware enforcing the timeout carried in its state.
pub async fn middleware(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Timeout.into_response(),
    }
}
