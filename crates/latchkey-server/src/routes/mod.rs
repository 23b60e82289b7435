//! The route table and the router built from it.
//!
//! Every endpoint is declared once in [`endpoints`]; the router is built only from
//! that list, and the integration suite checks that the list and the OpenAPI
//! document describe exactly the same operations.

pub mod admin;
pub mod auth;
pub mod events;
pub mod health;
pub mod input;
pub mod introspect;
pub mod me;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod password_policy;
pub mod well_known;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;

use crate::error::ApiError;
use crate::middleware::{self, security_headers::SecurityHeaders};
use crate::request_id;
use crate::state::AppState;

/// One served operation.
pub struct Endpoint {
    /// HTTP method.
    pub method: Method,
    /// Route template in OpenAPI/axum syntax (`/v1/me/sessions/{id}`).
    pub path: &'static str,
    handler: MethodRouter<AppState>,
}

fn endpoint<H, T>(method: Method, path: &'static str, handler: H) -> Endpoint
where
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
    Endpoint {
        method,
        path,
        handler: on(filter, handler),
    }
}

/// Every operation of the main listener. `/metrics` is included unless it is
/// disabled or served on its own listener.
pub fn endpoints(state: &AppState) -> Vec<Endpoint> {
    let mut list = vec![
        endpoint(Method::GET, "/healthz", health::healthz),
        endpoint(Method::GET, "/readyz", health::readyz),
        endpoint(Method::GET, "/v1/openapi.json", openapi::openapi_json),
        endpoint(Method::GET, "/.well-known/jwks.json", well_known::jwks),
        endpoint(
            Method::GET,
            "/.well-known/openid-configuration",
            well_known::openid_configuration,
        ),
        endpoint(Method::POST, "/v1/signup", auth::signup::signup),
        endpoint(Method::POST, "/v1/email/verify", auth::signup::verify),
        endpoint(
            Method::POST,
            "/v1/email/verify/resend",
            auth::signup::resend,
        ),
        endpoint(Method::POST, "/v1/login", auth::login::login),
        endpoint(Method::POST, "/v1/login/mfa", auth::login_mfa::login_mfa),
        endpoint(
            Method::POST,
            "/v1/login/webauthn/start",
            auth::login_webauthn::start,
        ),
        endpoint(
            Method::POST,
            "/v1/login/webauthn/finish",
            auth::login_webauthn::finish,
        ),
        endpoint(Method::GET, "/v1/password/policy", password_policy::policy),
        endpoint(
            Method::POST,
            "/v1/password/forgot",
            auth::password_reset::forgot,
        ),
        endpoint(
            Method::POST,
            "/v1/password/reset",
            auth::password_reset::reset,
        ),
        endpoint(Method::POST, "/v1/token/refresh", auth::refresh::refresh),
        endpoint(Method::POST, "/v1/logout", auth::logout::logout),
        endpoint(Method::GET, "/v1/csrf", auth::csrf::csrf),
        endpoint(Method::POST, "/v1/introspect", introspect::introspect),
        endpoint(Method::GET, "/v1/me", me::profile::get_me),
        endpoint(Method::PATCH, "/v1/me", me::profile::patch_me),
        endpoint(
            Method::POST,
            "/v1/me/password",
            me::password::change_password,
        ),
        endpoint(Method::POST, "/v1/me/email", me::email::change_email),
        endpoint(Method::GET, "/v1/me/security", me::security::security),
        endpoint(Method::GET, "/v1/me/events", me::events::list),
        endpoint(
            Method::GET,
            "/v1/me/events/stream",
            me::event_stream::stream,
        ),
        endpoint(Method::POST, "/v1/me/mfa/totp", me::mfa::start_totp),
        endpoint(
            Method::POST,
            "/v1/me/mfa/totp/confirm",
            me::mfa::confirm_totp,
        ),
        endpoint(Method::DELETE, "/v1/me/mfa/totp", me::mfa::delete_totp),
        endpoint(
            Method::POST,
            "/v1/me/mfa/recovery-codes",
            me::mfa::regenerate_recovery_codes,
        ),
        endpoint(
            Method::POST,
            "/v1/me/webauthn/register/start",
            me::webauthn::register_start,
        ),
        endpoint(
            Method::POST,
            "/v1/me/webauthn/register/finish",
            me::webauthn::register_finish,
        ),
        endpoint(Method::GET, "/v1/me/webauthn", me::webauthn::list),
        endpoint(Method::PATCH, "/v1/me/webauthn/{id}", me::webauthn::rename),
        endpoint(Method::DELETE, "/v1/me/webauthn/{id}", me::webauthn::delete),
        endpoint(Method::GET, "/v1/me/sessions", me::sessions::list),
        endpoint(Method::DELETE, "/v1/me/sessions", me::sessions::revoke_all),
        endpoint(
            Method::DELETE,
            "/v1/me/sessions/{id}",
            me::sessions::revoke_one,
        ),
    ];
    list.extend(admin_endpoints());
    if state.config.pages_enabled() {
        list.extend(page_endpoints());
    }
    if state.metrics.is_some() && state.config.metrics_on_main_listener() {
        list.push(endpoint(Method::GET, "/metrics", metrics::metrics));
    }
    list
}

/// The admin API (`/v1/admin/*`).
fn admin_endpoints() -> Vec<Endpoint> {
    vec![
        endpoint(Method::GET, "/v1/admin/users", admin::users::list),
        endpoint(Method::POST, "/v1/admin/users", admin::users::create),
        endpoint(Method::GET, "/v1/admin/users/{id}", admin::users::get),
        endpoint(Method::DELETE, "/v1/admin/users/{id}", admin::users::delete),
        endpoint(Method::PATCH, "/v1/admin/users/{id}", admin::users::patch),
        endpoint(
            Method::POST,
            "/v1/admin/users/{id}/disable",
            admin::users::disable,
        ),
        endpoint(
            Method::POST,
            "/v1/admin/users/{id}/enable",
            admin::users::enable,
        ),
        endpoint(
            Method::POST,
            "/v1/admin/users/{id}/unlock",
            admin::users::unlock,
        ),
        endpoint(
            Method::POST,
            "/v1/admin/users/{id}/logout",
            admin::users::logout,
        ),
        endpoint(
            Method::PUT,
            "/v1/admin/users/{id}/roles",
            admin::users::set_roles,
        ),
        endpoint(Method::GET, "/v1/admin/roles", admin::roles::list),
        endpoint(Method::POST, "/v1/admin/roles", admin::roles::create),
        endpoint(
            Method::DELETE,
            "/v1/admin/roles/{name}",
            admin::roles::delete,
        ),
        endpoint(Method::GET, "/v1/admin/audit", admin::audit::list),
        endpoint(Method::GET, "/v1/admin/keys", admin::keys::list),
        endpoint(Method::POST, "/v1/admin/keys/rotate", admin::keys::rotate),
        endpoint(Method::GET, "/v1/admin/webhooks", admin::webhooks::list),
        endpoint(Method::POST, "/v1/admin/webhooks", admin::webhooks::create),
        endpoint(
            Method::DELETE,
            "/v1/admin/webhooks/{id}",
            admin::webhooks::delete,
        ),
        endpoint(
            Method::POST,
            "/v1/admin/webhooks/{id}/rotate-secret",
            admin::webhooks::rotate_secret,
        ),
        endpoint(
            Method::GET,
            "/v1/admin/events/dead-letters",
            admin::dead_letters::list,
        ),
        endpoint(
            Method::POST,
            "/v1/admin/events/dead-letters/{id}/retry",
            admin::dead_letters::retry,
        ),
    ]
}

/// latchkey's own pages for mailed links (`[pages]`) and their two files.
fn page_endpoints() -> [Endpoint; 4] {
    [
        endpoint(Method::GET, crate::config::VERIFY_PAGE, pages::verify_email),
        endpoint(
            Method::GET,
            crate::config::RESET_PAGE,
            pages::reset_password,
        ),
        endpoint(Method::GET, pages::SCRIPT_PATH, pages::script),
        endpoint(Method::GET, pages::STYLE_PATH, pages::stylesheet),
    ]
}

/// The complete application: routes from [`endpoints`], plus `extra` (tests mount
/// probes there), wrapped in the full middleware stack.
pub fn router(state: &AppState, extra: Option<Router<AppState>>) -> Router {
    let mut routes = Router::new();
    for e in endpoints(state) {
        routes = routes.route(e.path, e.handler);
    }
    if let Some(extra) = extra {
        routes = routes.merge(extra);
    }
    with_middleware(routes, state)
}

/// The router of the separate metrics listener (`metrics.listen`).
pub fn metrics_router(state: &AppState) -> Router {
    let routes = Router::new().route("/metrics", axum::routing::get(metrics::metrics));
    with_middleware(routes, state)
}

fn with_middleware(routes: Router<AppState>, state: &AppState) -> Router {
    let config = &state.config;
    let limit = config.http.body_limit_bytes;
    let timeout = Duration::from_millis(config.http.request_timeout_ms);
    let headers = SecurityHeaders::new(config.public_url_is_https());
    routes
        // Innermost, on matched routes only: it needs the route's template.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::idempotency::middleware,
        ))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(
            ServiceBuilder::new()
                .layer(axum::middleware::from_fn(request_id::middleware))
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    middleware::request_log::middleware,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    headers,
                    middleware::security_headers::middleware,
                ))
                .layer(axum::middleware::from_fn(
                    middleware::problem_guard::middleware,
                ))
                .layer(axum::middleware::from_fn(middleware::metrics::middleware))
                .layer(axum::middleware::from_fn(
                    middleware::request_limits::middleware,
                ))
                .layer(axum::middleware::from_fn(
                    middleware::cors::strip_when_refused,
                ))
                .layer(middleware::cors::layer(&config.cors))
                .layer(CatchPanicLayer::custom(middleware::panic_to_problem))
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    middleware::rate_limit::middleware,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    timeout,
                    middleware::timeout::middleware,
                ))
                .layer(RequestBodyLimitLayer::new(limit))
                .layer(DefaultBodyLimit::max(limit)),
        )
        .with_state(state.clone())
}
