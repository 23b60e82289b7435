//! Exact-origin CORS from `[cors]`. An origin that is not listed gets no
//! `Access-Control-Allow-*` headers, so the browser blocks the call.

use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::CorsConfig;

/// The CORS layer for a validated configuration (invalid entries were refused by
/// `Config::validate`, so they are skipped here rather than failing).
pub fn layer(cfg: &CorsConfig) -> CorsLayer {
    let wildcard = cfg.allowed_origins.iter().any(|o| o.trim() == "*");
    let origins = if wildcard && !cfg.allow_credentials {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            cfg.allowed_origins
                .iter()
                .filter(|o| o.trim() != "*")
                .filter_map(|o| HeaderValue::from_str(o.trim()).ok()),
        )
    };
    let methods: Vec<Method> = cfg
        .allowed_methods
        .iter()
        .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
        .collect();
    let headers: Vec<HeaderName> = cfg
        .allowed_headers
        .iter()
        .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods(methods)
        .allow_headers(headers)
        .allow_credentials(cfg.allow_credentials && !wildcard)
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("retry-after"),
            HeaderName::from_static("ratelimit"),
            HeaderName::from_static("ratelimit-policy"),
        ])
        .max_age(Duration::from_secs(cfg.max_age_seconds))
}

/// Middleware (outside the CORS layer): when no origin was allowed, removes every
/// `Access-Control-*` header the layer still set (it sends `Allow-Credentials` and
/// preflight answers regardless of the origin), so a refused origin learns nothing.
pub async fn strip_when_refused(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if !response
        .headers()
        .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    {
        let names: Vec<HeaderName> = response
            .headers()
            .keys()
            .filter(|n| n.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in names {
            response.headers_mut().remove(name);
        }
    }
    response
}
