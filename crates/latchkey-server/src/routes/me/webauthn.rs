//! `/v1/me/webauthn...`: registering, listing, renaming and removing passkeys.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use latchkey_core::mfa::passkey::{PasskeyRecord, MAX_NAME_CHARS};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::client::ClientInfo;
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::{ApiJson, Authenticated};
use crate::routes::input;
use crate::state::AppState;

/// Start of a registration.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterStart {
    /// A label for the passkey (at most 64 characters; default "Passkey").
    #[serde(default)]
    pub name: Option<String>,
}

/// A challenge for the authenticator.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ChallengeBody {
    /// Send it back with the answer.
    pub challenge_id: Uuid,
    /// Options for `navigator.credentials.create()` / `.get()` (`publicKey`
    /// with base64url binary fields).
    #[schema(value_type = Object)]
    pub options: serde_json::Value,
}

/// The authenticator's answer to a registration.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterFinish {
    /// From the start call.
    pub challenge_id: Uuid,
    /// The `PublicKeyCredential` from `navigator.credentials.create()`, binary
    /// fields base64url.
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
}

/// A passkey.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PasskeyBody {
    /// Its id.
    pub id: Uuid,
    /// The user's label.
    pub name: String,
    /// May be synced between devices (a "synced passkey").
    pub backup_eligible: bool,
    /// Is backed up now.
    pub backup_state: bool,
    /// RFC 3339.
    #[serde(with = "latchkey_core::time_fmt::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// RFC 3339, if used since.
    #[serde(with = "latchkey_core::time_fmt::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<OffsetDateTime>,
}

impl From<&PasskeyRecord> for PasskeyBody {
    fn from(p: &PasskeyRecord) -> Self {
        Self {
            id: p.id,
            name: p.name.clone(),
            backup_eligible: p.backup_eligible,
            backup_state: p.backup_state,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        }
    }
}

/// A registered passkey, with recovery codes when it is the first factor.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RegisteredBody {
    /// The passkey.
    #[serde(flatten)]
    pub passkey: PasskeyBody,
    /// Ten recovery codes, shown once, when this passkey is the account's
    /// first second factor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes: Option<Vec<String>>,
}

/// The user's passkeys.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PasskeyList {
    /// Oldest first; all of them (an account holds at most 20).
    pub items: Vec<PasskeyBody>,
    /// Always `null`: the list is never split into pages.
    pub next_cursor: Option<String>,
}

/// New label.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rename {
    /// 1 to 64 characters.
    pub name: String,
}

fn checked_name(name: &str) -> Result<String, ApiError> {
    let mut errors = Vec::new();
    input::check_name("name", name, MAX_NAME_CHARS, &mut errors);
    if name.trim().is_empty() {
        errors.push(FieldError {
            field: "name".into(),
            code: "required".into(),
            message: "Give the passkey a name.".into(),
        });
    }
    if errors.is_empty() {
        Ok(name.trim().to_owned())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Starts registering a passkey.
#[utoipa::path(post, path = "/v1/me/webauthn/register/start", tag = "me", security(("bearer" = []), ("cookie" = [])), request_body = RegisterStart,
    responses(
        (status = 200, description = "Pass `options` to `navigator.credentials.create()`; the challenge is valid 5 minutes, once", body = ChallengeBody),
        (status = 400, description = "`validation_failed` (name)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: the account holds the maximum of 20 passkeys", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`csrf_failed`, or `reauthentication_required`: the session signed in too long ago to change second factors (`sessions.privileged_max_age_seconds`); sign in again", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`unavailable`: passkeys need `public_url` with a domain name", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn register_start(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    ApiJson(body): ApiJson<RegisterStart>,
) -> Result<ApiJson<ChallengeBody>, ApiError> {
    let name = body.name.as_deref().map(checked_name).transpose()?;
    let (challenge_id, options) = state
        .services
        .passkeys
        .start_passkey_registration(&p, name)
        .await?;
    Ok(ApiJson(ChallengeBody {
        challenge_id,
        options,
    }))
}

/// Stores the passkey the authenticator created. Other sessions are signed
/// out and the user is mailed.
#[utoipa::path(post, path = "/v1/me/webauthn/register/finish", tag = "me", security(("bearer" = []), ("cookie" = [])), request_body = RegisterFinish,
    responses(
        (status = 201, description = "Registered", body = RegisteredBody),
        (status = 400, description = "`validation_failed`: the answer was refused (origin, challenge, format) or the passkey is registered already", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`, or `invalid_token` (challenge unknown, used, expired or another user's)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`csrf_failed`, or `reauthentication_required`: the session signed in too long ago to change second factors (`sessions.privileged_max_age_seconds`); sign in again", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn register_finish(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    ApiJson(body): ApiJson<RegisterFinish>,
) -> Result<(StatusCode, ApiJson<RegisteredBody>), ApiError> {
    let registered = state
        .services
        .passkeys
        .finish_passkey_registration(&p, body.challenge_id, body.credential, &client.context())
        .await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(RegisteredBody {
            passkey: PasskeyBody::from(&registered.passkey),
            recovery_codes: registered
                .recovery_codes
                .map(|codes| codes.iter().map(|c| c.to_string()).collect()),
        }),
    ))
}

/// Lists the user's passkeys.
#[utoipa::path(get, path = "/v1/me/webauthn", tag = "me", security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The passkeys", body = PasskeyList),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
) -> Result<ApiJson<PasskeyList>, ApiError> {
    let items = state.services.passkeys.passkeys(&p).await?;
    Ok(ApiJson(PasskeyList {
        items: items.iter().map(PasskeyBody::from).collect(),
        next_cursor: None,
    }))
}

/// Renames a passkey.
#[utoipa::path(patch, path = "/v1/me/webauthn/{id}", tag = "me", security(("bearer" = []), ("cookie" = [])), request_body = Rename,
    params(("id" = Uuid, Path, description = "Passkey id")),
    responses(
        (status = 204, description = "Renamed"),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`csrf_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found` (also for another user's passkey)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn rename(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    Path(id): Path<Uuid>,
    ApiJson(body): ApiJson<Rename>,
) -> Result<StatusCode, ApiError> {
    let name = checked_name(&body.name)?;
    state
        .services
        .passkeys
        .rename_passkey(&p, id, &name)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a passkey. Other sessions are signed out and the user is mailed.
#[utoipa::path(delete, path = "/v1/me/webauthn/{id}", tag = "me", security(("bearer" = []), ("cookie" = [])),
    params(("id" = Uuid, Path, description = "Passkey id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`csrf_failed`, or `reauthentication_required`: the session signed in too long ago to change second factors (`sessions.privileged_max_age_seconds`); sign in again", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found` (also for another user's passkey)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Authenticated(p): Authenticated,
    client: ClientInfo,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, ApiError> {
    state
        .services
        .passkeys
        .delete_passkey(&p, id, &client.context())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
