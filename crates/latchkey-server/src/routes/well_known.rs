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
    let mut response = ApiJson(state.auth.keys.ring().jwks()).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!(
        "public, max-age={}",
        crate::config::JWKS_MAX_AGE_SECONDS
    )) {
        response.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    response
}

/// Discovery document (the subset of OpenID Connect Discovery that applies).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Discovery {
    /// `iss` of every access token.
    pub issuer: String,
    /// Where the signing keys are.
    pub jwks_uri: String,
    /// Signing algorithm of access tokens.
    pub id_token_signing_alg_values_supported: Vec<String>,
}

/// Issuer and key location for resource servers.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "tokens",
    responses((status = 200, description = "Discovery document", body = Discovery)))]
pub async fn openid_configuration(State(state): State<AppState>) -> ApiJson<Discovery> {
    let base = state.config.effective_public_url();
    ApiJson(Discovery {
        issuer: state.auth.tokens.issuer.clone(),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        id_token_signing_alg_values_supported: vec![state.config.tokens.algorithm.clone()],
    })
}
