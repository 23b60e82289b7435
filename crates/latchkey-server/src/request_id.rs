//! Request ids: every request gets one, every response carries it in
//! `x-request-id`, every log line written while serving it carries it (through the
//! request's tracing span), and every problem body names it.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header carrying the id, in and out.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-supplied id we echo.
pub const MAX_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: String;
}

/// The id of the request being served on this task, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// A client id is echoed only when it is 1–128 visible ASCII characters; anything
/// else (empty, too long, spaces, control or non-ASCII bytes) is replaced, so ids
/// cannot inject into logs or headers.
pub fn is_acceptable(value: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&value.len()) && value.iter().all(|b| (0x21..=0x7e).contains(b))
}

/// A new id: a UUIDv7 (time-ordered, so ids sort like the logs).
pub fn generate() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Middleware: picks the id, opens the request span, serves the request inside it
/// with the id in scope, and sets the response header.
pub async fn middleware(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&X_REQUEST_ID)
        .map(HeaderValue::as_bytes)
        .filter(|v| is_acceptable(v))
        .and_then(|v| std::str::from_utf8(v).ok())
        .map_or_else(generate, str::to_owned);
    let header = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    request
        .headers_mut()
        .insert(X_REQUEST_ID.clone(), header.clone());
    let span = tracing::info_span!("request", request_id = %id, method = %request.method());
    let mut response = CURRENT.scope(id, next.run(request)).instrument(span).await;
    response.headers_mut().insert(X_REQUEST_ID.clone(), header);
    response
}

#[cfg(test)]
mod tests {
    use super::is_acceptable;

    #[test]
    fn only_short_visible_ascii_ids_are_echoed() {
        assert!(is_acceptable(b"abc-123_XYZ.~"));
        assert!(is_acceptable(&[b'a'; 128]));
        assert!(!is_acceptable(&[b'a'; 129]));
        assert!(!is_acceptable(b""));
        assert!(!is_acceptable(b"has space"));
        assert!(!is_acceptable(b"new\nline"));
        assert!(!is_acceptable("ünïcode".as_bytes()));
        assert!(!is_acceptable(b"tab\there"));
    }
}
