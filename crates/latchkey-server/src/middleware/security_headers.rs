//! Security headers on every response (DESIGN.md "HTTP defaults"), HSTS only when
//! the public URL is https, and `Cache-Control: no-store` on everything under `/v1`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The headers added to every response, computed once at start-up.
#[derive(Debug, Clone)]
pub struct SecurityHeaders(Arc<HeaderMap>);

/// HSTS for two years, subdomains included.
pub const HSTS: &str = "max-age=63072000; includeSubDomains";

impl SecurityHeaders {
    /// The header set; `https` adds `Strict-Transport-Security`.
    pub fn new(https: bool) -> Self {
        let mut map = HeaderMap::new();
        let mut set = |name: HeaderName, value: &'static str| {
            map.insert(name, HeaderValue::from_static(value));
        };
        set(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        );
        set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
        set(header::X_FRAME_OPTIONS, "DENY");
        set(header::REFERRER_POLICY, "no-referrer");
        set(header::X_XSS_PROTECTION, "0");
        set(
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        );
        set(
            HeaderName::from_static("permissions-policy"),
            "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()",
        );
        if https {
            set(header::STRICT_TRANSPORT_SECURITY, HSTS);
        }
        Self(Arc::new(map))
    }
}

/// Middleware adding the headers, overriding any a handler set — except a
/// `Content-Security-Policy` of the handler's own (latchkey's HTML pages set
/// theirs; every API answer gets the strict default).
pub async fn middleware(
    State(headers): State<SecurityHeaders>,
    request: Request,
    next: Next,
) -> Response {
    let under_v1 = request.uri().path() == "/v1" || request.uri().path().starts_with("/v1/");
    let mut response = next.run(request).await;
    let out = response.headers_mut();
    let own_csp = out.contains_key(header::CONTENT_SECURITY_POLICY);
    for (name, value) in headers.0.iter() {
        if own_csp && name == header::CONTENT_SECURITY_POLICY {
            continue;
        }
        out.insert(name.clone(), value.clone());
    }
    if under_v1 {
        out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
