//! `/v1/admin/keys`: the signing keys and their rotation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use latchkey_core::auth::{Caller, KeyInfo};
use serde::Serialize;
use time::OffsetDateTime;

use crate::client::ClientInfo;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, Authenticated};
use crate::state::AppState;

/// One signing key (public facts only).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyBody {
    /// Key id: the `kid` of the tokens it signs.
    pub kid: String,
    /// JWS algorithm (`EdDSA`, `ES256`, `RS256`).
    pub alg: String,
    /// `active` (signs), `published` (in the JWKS ahead of its activation)
    /// or `retired` (verifies what it signed until `expires_at`).
    pub state: &'static str,
    /// RFC 3339.
    #[serde(with = "latchkey_core::time_fmt::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// When it signs first (RFC 3339).
    #[serde(with = "latchkey_core::time_fmt::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub activates_at: OffsetDateTime,
    /// When a retired key leaves the JWKS (RFC 3339); `null` otherwise.
    #[serde(with = "latchkey_core::time_fmt::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<OffsetDateTime>,
}

impl From<&KeyInfo> for KeyBody {
    fn from(k: &KeyInfo) -> Self {
        Self {
            kid: k.kid.clone(),
            alg: k.alg.clone(),
            state: k.state.as_str(),
            created_at: k.created_at,
            activates_at: k.activates_at,
            expires_at: k.expires_at,
        }
    }
}

/// Every key in the key set.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeysList {
    /// Oldest first.
    pub items: Vec<KeyBody>,
}

/// Lists the signing keys (`keys:rotate`).
#[utoipa::path(get, path = "/v1/admin/keys", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The key set, oldest first", body = KeysList),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
) -> Result<ApiJson<KeysList>, ApiError> {
    let listed = state
        .services
        .admin
        .keys(Caller::User(&p), &*state.admin_keys)
        .await?;
    Ok(ApiJson(KeysList {
        items: listed.iter().map(KeyBody::from).collect(),
    }))
}

/// Makes a new signing key (`keys:rotate`): published at once, signing after
/// `keys.publish_ahead_seconds` on every node sharing the key storage.
#[utoipa::path(post, path = "/v1/admin/keys/rotate", tag = "admin", security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 201, description = "The new key", body = KeyBody),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`, or `csrf_failed`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rotate(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
) -> Result<impl IntoResponse, ApiError> {
    let key = state
        .services
        .admin
        .rotate_keys(Caller::User(&p), &*state.admin_keys, &client.context())
        .await?;
    Ok((StatusCode::CREATED, ApiJson(KeyBody::from(&key))))
}
