//! The application's own limits on the request line and headers, below
//! hyper's connection-level ones, so an oversized request gets a problem
//! (with its request id) instead of hyper's bare status line.
//!
//! Guarantees: a request target (path and query) over [`MAX_URI_BYTES`] is
//! `414 uri_too_long`; more than [`MAX_HEADERS`] headers, or more than
//! [`MAX_HEADER_BYTES`] of names and values together, is
//! `431 header_fields_too_large`; nothing of the request is processed first.
//! hyper's own limits sit far above (see `serve`): only requests beyond them
//! are refused at the connection level.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Longest path and query the application takes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most request headers the application takes.
pub const MAX_HEADERS: usize = 100;
/// Most bytes of header names and values together.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Middleware: refuses a request over the limits above.
pub async fn middleware(request: Request, next: Next) -> Response {
    let uri_len = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return ApiError::UriTooLong.into_response();
    }
    let headers = request.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return ApiError::HeaderFieldsTooLarge.into_response();
    }
    next.run(request).await
}
