//! `POST /v1/introspect` (RFC 7662).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use latchkey_core::auth::Introspection;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;
use crate::state::AppState;

/// Longest token looked at.
const MAX_TOKEN: usize = 8 * 1024;

/// The request: RFC 7662's form encoding (`token=...&token_type_hint=...`) or
/// the same fields as JSON.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntrospectBody {
    /// An access token (JWT) or a refresh token (`lk_rt_...`).
    pub token: String,
    /// Optional hint (`access_token` / `refresh_token`); the token's own shape decides.
    pub token_type_hint: Option<String>,
}

/// RFC 7662 answer. Inactive tokens are only `{"active": false}`.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct IntrospectResponse {
    /// Whether the token is valid right now.
    pub active: bool,
    /// `access_token` or `refresh_token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    /// User id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Session id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Token id (access tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Expiry (unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issue time (unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Issuer (access tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience (access tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// Roles.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// Authentication methods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
}

/// Whether the request carries the Basic credentials of a configured client.
/// Secrets are compared as SHA-256 digests in constant time; an unknown id costs
/// the same comparison.
fn client_authenticated(headers: &HeaderMap, state: &AppState) -> bool {
    let Some((id, secret)) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(i, s)| (i.to_owned(), s.to_owned()))
        })
    else {
        return false;
    };
    let presented = Sha256::digest(secret.as_bytes());
    let mut ok = false;
    for client in &state.config.introspection.clients {
        let expected = (0..32)
            .map(|i| {
                u8::from_str_radix(
                    client.secret_sha256.get(i * 2..i * 2 + 2).unwrap_or("zz"),
                    16,
                )
                .unwrap_or(0)
            })
            .collect::<Vec<u8>>();
        let secret_matches: bool = presented.as_slice().ct_eq(&expected).into();
        ok |= secret_matches && client.id == id;
    }
    ok
}

fn token_from_body(headers: &HeaderMap, body: &[u8]) -> Result<String, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let token = if content_type.starts_with("application/x-www-form-urlencoded") {
        url::form_urlencoded::parse(body)
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
            .ok_or_else(|| ApiError::MalformedRequest("Missing field `token`.".into()))?
    } else if content_type.starts_with("application/json") {
        serde_json::from_slice::<IntrospectBody>(body)
            .map_err(|_| {
                ApiError::MalformedRequest("The body is not a valid introspection request.".into())
            })?
            .token
    } else {
        return Err(ApiError::UnsupportedMediaType);
    };
    Ok(token)
}

/// Tells a resource server whether a token is active, reflecting revocation at
/// once. Callers authenticate with HTTP Basic as a client from `[introspection]`.
#[utoipa::path(post, path = "/v1/introspect", tag = "tokens",
    request_body(description = "RFC 7662 form (`token=...`), or the same fields as JSON",
        content((IntrospectBody = "application/x-www-form-urlencoded"), (IntrospectBody = "application/json"))),
    security(("basic" = [])),
    responses(
        (status = 200, description = "The token's state", body = IntrospectResponse),
        (status = 401, description = "`unauthorized`: missing or wrong client credentials", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !client_authenticated(&headers, &state) {
        let mut response = ApiError::Unauthorized.into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"latchkey\""),
        );
        return Ok(response);
    }
    let token = token_from_body(&headers, &body)?;
    if token.len() > MAX_TOKEN {
        return Ok(ApiJson(IntrospectResponse::default()).into_response());
    }
    let answer = match state.services.sessions.introspect(&token).await? {
        None => IntrospectResponse::default(),
        Some(Introspection::Access { claims, roles }) => IntrospectResponse {
            active: true,
            token_type: Some("access_token"),
            sub: Some(claims.sub),
            sid: Some(claims.sid),
            jti: Some(claims.jti),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            iss: Some(claims.iss),
            aud: Some(claims.aud),
            roles: Some(roles),
            amr: Some(claims.amr),
        },
        Some(Introspection::Refresh {
            session,
            expires_at,
            roles,
        }) => IntrospectResponse {
            active: true,
            token_type: Some("refresh_token"),
            sub: Some(session.user_id.to_string()),
            sid: Some(session.id.to_string()),
            exp: Some(expires_at.unix_timestamp()),
            iat: Some(session.created_at.unix_timestamp()),
            roles: Some(roles),
            ..IntrospectResponse::default()
        },
    };
    Ok(ApiJson(answer).into_response())
}
