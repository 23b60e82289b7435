//! `/.well-known/jwks.json` and `/.well-known/openid-configuration`.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::extract::ApiJson;
use crate::state::AppState;

/// The public signing keys: the current one and previous ones whose tokens may
/// still be valid. Cacheable for five minutes.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "tokens",
    responses((status = 200, description = "JWK set (RFC 7517)", body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = ApiJson(state.services.sessions.keys().ring().jwks()).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!(
        "public, max-age={}",
        crate::config::JWKS_MAX_AGE_SECONDS
    )) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

/// Discovery document: the subset of OpenID Connect Discovery / RFC 8414 metadata
/// that applies to latchkey. It lists only endpoints that exist and behave as the
/// standard names promise: no `token_endpoint` (latchkey has no OAuth 2.0 token
/// endpoint; `/v1/token/refresh` is its own JSON API) and no
/// `id_token_signing_alg_values_supported` (latchkey issues no ID tokens).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Discovery {
    /// `iss` of every access token.
    pub issuer: String,
    /// Where the signing keys are (RFC 7517 JWK set).
    pub jwks_uri: String,
    /// Token introspection (RFC 7662).
    pub introspection_endpoint: String,
    /// How introspection clients authenticate: `client_secret_basic`.
    pub introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    /// The OpenAPI 3.1 description of every endpoint (latchkey extension).
    pub latchkey_openapi_uri: String,
}

/// Issuer and endpoint locations for resource servers.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "tokens",
    responses((status = 200, description = "Discovery document", body = Discovery)))]
pub async fn openid_configuration(State(state): State<AppState>) -> ApiJson<Discovery> {
    let base = state.config.effective_public_url();
    ApiJson(Discovery {
        issuer: state.services.sessions.tokens().issuer.clone(),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        introspection_endpoint: format!("{base}/v1/introspect"),
        introspection_endpoint_auth_methods_supported: vec!["client_secret_basic"],
        latchkey_openapi_uri: format!("{base}/v1/openapi.json"),
    })
}
