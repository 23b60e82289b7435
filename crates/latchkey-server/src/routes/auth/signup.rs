//! `POST /v1/signup`, `POST /v1/email/verify`, `POST /v1/email/verify/resend`

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use latchkey_core::auth::{SignupOutcome, SignupRequest};
use serde::{Deserialize, Serialize};

use super::{TokenResponse, UserBody};
use crate::client::ClientInfo;
use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;
use crate::routes::input;
use crate::routes::me::password::weak_password_error;
use crate::state::AppState;

/// Sign-up body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupBody {
    /// Email address (at most 254 characters).
    pub email: String,
    /// Password (12 to 128 characters by default).
    pub password: String,
    /// Display name (at most 100 characters).
    pub name: Option<String>,
}

/// `{"status":"verification_sent"}`
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// Always `verification_sent`.
    #[schema(example = "verification_sent")]
    pub status: &'static str,
}

/// Creates an account. With verification required (default) the answer is 202
/// whether or not the address was already taken (its owner is told by mail).
#[utoipa::path(post, path = "/v1/signup", tag = "auth", request_body = SignupBody,
    responses(
        (status = 202, description = "Check your mail", body = Accepted),
        (status = 201, description = "Signed in (verification disabled)", body = TokenResponse),
        (status = 400, description = "`validation_failed` or `malformed_request`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict` (only with enumeration protection off)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn signup(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(body): ApiJson<SignupBody>,
) -> Result<Response, ApiError> {
    let cfg = &state.config;
    let mut errors = Vec::new();
    input::check_email_shape(&body.email, "email", &mut errors);
    input::check_text(
        "password",
        &body.password,
        cfg.password.max_length,
        false,
        &mut errors,
    );
    let name = body
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    if let Some(name) = name {
        input::check_name("name", name, input::MAX_NAME, &mut errors);
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let request = SignupRequest {
        email: body.email.clone(),
        password: zeroize::Zeroizing::new(body.password),
        name: name.map(str::to_owned),
    };
    let outcome = state
        .services
        .accounts
        .signup(&request, cfg.auth.enumeration_protection, &client.context())
        .await?;
    match outcome {
        Err(weak) => Err(weak_password_error("password", weak)),
        Ok(SignupOutcome::VerificationSent) => Ok((
            StatusCode::ACCEPTED,
            ApiJson(Accepted {
                status: "verification_sent",
            }),
        )
            .into_response()),
        Ok(SignupOutcome::SignedIn(issued)) => {
            Ok((StatusCode::CREATED, ApiJson(TokenResponse::from(*issued))).into_response())
        }
        Ok(SignupOutcome::Conflict) => Err(ApiError::Conflict),
    }
}

/// Verification body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// The token from the mailed link: `lk_ev_...` (a new account) or
    /// `lk_ec_...` (an email change, confirmed by this call).
    pub token: String,
}

/// Verifies the address the token was mailed to. A token works once, for 24 hours.
/// An email-change token gives the account its new address (verified) and tells
/// the old address.
#[utoipa::path(post, path = "/v1/email/verify", tag = "auth", request_body = VerifyBody,
    responses(
        (status = 200, description = "Verified", body = UserBody),
        (status = 401, description = "`invalid_token`: unknown, used, expired or superseded", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`conflict`: email change only — another account took the address since the request", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<VerifyBody>,
) -> Result<ApiJson<UserBody>, ApiError> {
    let user = state.services.accounts.verify_email(&body.token).await?;
    Ok(ApiJson(UserBody::from(&user)))
}

/// Resend body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendBody {
    /// The address to verify.
    pub email: String,
}

/// Mails a new verification link if the address belongs to an unverified account.
/// Always 202.
#[utoipa::path(post, path = "/v1/email/verify/resend", tag = "auth", request_body = ResendBody,
    responses(
        (status = 202, description = "Accepted (whatever the address)", body = Accepted),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn resend(
    State(state): State<AppState>,
    slot: crate::ratelimit::SlotExtension,
    ApiJson(body): ApiJson<ResendBody>,
) -> Result<Response, ApiError> {
    input::flow_address(&state, &body.email, &slot).await?;
    // After the answer, as forgot: an unverified account (a lookup, a token,
    // a mail) must not take longer to answer than an unknown address.
    let accounts = state.services.accounts.clone();
    state
        .services
        .background
        .spawn("resend_verification", async move {
            if let Err(e) = accounts.resend_verification(&body.email).await {
                tracing::warn!(error = %e, "verification mail not issued");
            }
        });
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(Accepted {
            status: "verification_sent",
        }),
    )
        .into_response())
}
