//! The one mapping from failures to HTTP: every error any route or middleware
//! produces becomes an RFC 9457 `application/problem+json` body with a stable `code`
//! from API.md. Internal details never reach the body; they are logged under the
//! request id.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use latchkey_adapters::log_every::{LogEveryPerKind, TROUBLE_INTERVAL};
use latchkey_core::ports::StoreError;
use serde::Serialize;

use crate::request_id;

/// Media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field in a `validation_failed` problem.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    /// The field's name in the request body.
    pub field: String,
    /// Stable machine-readable reason (`too_short`, `breached`, ...).
    pub code: String,
    /// Human-readable advice.
    pub message: String,
}

/// Every error the API reports. Each variant has exactly one status and code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `malformed_request`: not JSON, wrong types, unknown fields, bad query.
    #[error("malformed request")]
    MalformedRequest(String),
    /// 400 `validation_failed`, with per-field errors.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// 401 `unauthorized`: missing, malformed, expired, revoked or forged token.
    #[error("unauthorized")]
    Unauthorized,
    /// 401 `invalid_credentials`: wrong email or password (identical for both).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// 401 `invalid_token`: refresh/verification token unknown, used or expired.
    #[error("invalid token")]
    InvalidToken,
    /// 401 `invalid_mfa_code`: wrong TOTP code or recovery code.
    #[error("invalid mfa code")]
    InvalidMfaCode,
    /// 403 `email_not_verified`.
    #[error("email not verified")]
    EmailNotVerified,
    /// 403 `forbidden`.
    #[error("forbidden")]
    Forbidden,
    /// 403 `reauthentication_required`: the session signed in too long ago
    /// for this change.
    #[error("sign in again")]
    SignInAgain,
    /// 403 `csrf_failed`: a cookie-authenticated unsafe request without a valid
    /// CSRF token or from an origin that is not allowed; the detail says which.
    #[error("csrf check failed")]
    CsrfFailed(CsrfCheck),
    /// 409 `conflict`.
    #[error("conflict")]
    Conflict,
    /// 409 `idempotency_conflict`: the `Idempotency-Key` was used with another
    /// body, or its first request still runs; the detail says which.
    #[error("idempotency conflict")]
    IdempotencyConflict(latchkey_core::idempotency::Conflict),
    /// 404 `not_found`.
    #[error("not found")]
    NotFound,
    /// 405 `method_not_allowed`.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 413 `payload_too_large`.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 415 `unsupported_media_type`.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// 414 `uri_too_long`: the request target is over the application's limit.
    #[error("uri too long")]
    UriTooLong,
    /// 431 `header_fields_too_large`: too many request headers, or too large.
    #[error("header fields too large")]
    HeaderFieldsTooLarge,
    /// 423 `account_locked`: too many failed sign-ins for this identifier.
    #[error("account locked")]
    AccountLocked {
        /// Seconds until the lock ends.
        retry_after: u64,
    },
    /// 429 `rate_limited`, with seconds until a retry can succeed.
    #[error("rate limited")]
    RateLimited {
        /// Seconds until the next attempt may succeed.
        retry_after: u64,
    },
    /// 503 `unavailable`: the named dependency is down.
    #[error("unavailable: {0}")]
    Unavailable(&'static str),
    /// 503 `unavailable`: the request ran longer than `http.request_timeout_ms`.
    #[error("request timed out")]
    Timeout,
    /// 500 `internal`: a bug. The cause is logged, never shown.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Which part of the CSRF defence refused a cookie-authenticated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfCheck {
    /// The `Origin` is not the public URL's or one of `cors.allowed_origins`
    /// (or, without `Origin`, `Sec-Fetch-Site` is not `same-origin`).
    Origin,
    /// `X-CSRF-Token` is missing, repeated or not this session's token.
    Token,
}

/// The problem+json body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `/problems/<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type.
    pub title: &'static str,
    /// HTTP status.
    pub status: u16,
    /// What happened, for a human.
    pub detail: String,
    /// Stable machine-readable code (API.md).
    pub code: &'static str,
    /// The request's id, to find the matching log lines.
    pub request_id: String,
    /// Field errors (`validation_failed` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// Seconds to wait (423 and 429 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// Status, stable code and title: the single table of API.md's error codes.
    pub fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            Self::MalformedRequest(_) => (
                StatusCode::BAD_REQUEST,
                "malformed_request",
                "Malformed request",
            ),
            Self::Validation(_) => (
                StatusCode::BAD_REQUEST,
                "validation_failed",
                "Validation failed",
            ),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::InvalidCredentials => (
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "Invalid credentials",
            ),
            Self::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token", "Invalid token"),
            Self::InvalidMfaCode => (
                StatusCode::UNAUTHORIZED,
                "invalid_mfa_code",
                "Invalid MFA code",
            ),
            Self::EmailNotVerified => (
                StatusCode::FORBIDDEN,
                "email_not_verified",
                "Email not verified",
            ),
            Self::Conflict => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::IdempotencyConflict(_) => (
                StatusCode::CONFLICT,
                "idempotency_conflict",
                "Idempotency conflict",
            ),
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            Self::SignInAgain => (
                StatusCode::FORBIDDEN,
                "reauthentication_required",
                "Reauthentication required",
            ),
            Self::CsrfFailed(_) => (StatusCode::FORBIDDEN, "csrf_failed", "CSRF check failed"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found", "Not found"),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            ),
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
            ),
            Self::UriTooLong => (StatusCode::URI_TOO_LONG, "uri_too_long", "URI too long"),
            Self::HeaderFieldsTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "header_fields_too_large",
                "Request header fields too large",
            ),
            Self::AccountLocked { .. } => (StatusCode::LOCKED, "account_locked", "Account locked"),
            Self::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests",
            ),
            Self::Unavailable(_) | Self::Timeout => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::MalformedRequest(why) => why.clone(),
            Self::Validation(_) => "The request has invalid fields.".into(),
            Self::Unauthorized => {
                "Authentication is required or the credentials are not valid.".into()
            }
            Self::InvalidCredentials => "The email or password is wrong.".into(),
            Self::InvalidToken => "The token is unknown, already used or expired.".into(),
            Self::InvalidMfaCode => "The code is wrong, expired or already used.".into(),
            Self::EmailNotVerified => "Verify your email address first.".into(),
            Self::Conflict => "The request conflicts with the current state.".into(),
            Self::IdempotencyConflict(latchkey_core::idempotency::Conflict::InFlight) => {
                "The first request with this Idempotency-Key is still running; retry shortly."
                    .into()
            }
            Self::IdempotencyConflict(latchkey_core::idempotency::Conflict::OtherBody) => {
                "This Idempotency-Key was used with another request body; use a new key.".into()
            }
            Self::Forbidden => "You are not allowed to do this.".into(),
            Self::SignInAgain => {
                "Sign in again: second factors can only be changed shortly after signing in.".into()
            }
            Self::CsrfFailed(CsrfCheck::Origin) => {
                "The request's Origin may not make cookie-authenticated requests: \
                 only the public URL's origin and those listed in cors.allowed_origins may."
                    .into()
            }
            Self::CsrfFailed(CsrfCheck::Token) => {
                "The X-CSRF-Token header is missing or is not this session's CSRF token \
                 (it is in the sign-in answer, the readable CSRF cookie and GET /v1/csrf)."
                    .into()
            }
            Self::NotFound => "There is nothing at this address.".into(),
            Self::MethodNotAllowed => "This method is not allowed on this resource.".into(),
            Self::PayloadTooLarge => "The request body is larger than this server accepts.".into(),
            Self::UnsupportedMediaType => "Send the body as application/json.".into(),
            Self::UriTooLong => {
                "The request's path and query are longer than this server accepts.".into()
            }
            Self::HeaderFieldsTooLarge => {
                "The request has more headers, or larger ones, than this server accepts.".into()
            }
            Self::RateLimited { .. } => "Too many requests; retry later.".into(),
            Self::AccountLocked { .. } => {
                "Too many failed sign-ins; sign-in is paused. Retry later.".into()
            }
            Self::Unavailable(what) => format!("A required service is unavailable: {what}."),
            Self::Timeout => "The request took too long to complete; retry later.".into(),
            Self::Internal(_) => "Something went wrong on our side.".into(),
        }
    }

    /// The problem body for this error under the current request id.
    pub fn problem(&self) -> Problem {
        let (status, code, title) = self.parts();
        Problem {
            kind: format!("/problems/{code}"),
            title,
            status: status.as_u16(),
            detail: self.detail(),
            code,
            request_id: request_id::current().unwrap_or_default(),
            errors: match self {
                Self::Validation(errors) => Some(errors.clone()),
                _ => None,
            },
            retry_after: match self {
                Self::RateLimited { retry_after } | Self::AccountLocked { retry_after } => {
                    Some(*retry_after)
                }
                _ => None,
            },
        }
    }

    /// The error that answers a response of `status` produced outside our handlers
    /// (by axum or a tower layer), so even those leave as problem+json.
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::BAD_REQUEST => {
                Self::MalformedRequest("The request could not be understood.".into())
            }
            StatusCode::UNAUTHORIZED => Self::Unauthorized,
            StatusCode::FORBIDDEN => Self::Forbidden,
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::URI_TOO_LONG => Self::UriTooLong,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Self::HeaderFieldsTooLarge,
            StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::REQUEST_TIMEOUT
            | StatusCode::GATEWAY_TIMEOUT => Self::Timeout,
            _ if status.is_client_error() => {
                Self::MalformedRequest("The request could not be processed.".into())
            }
            _ => Self::Internal(format!("unexpected status {status}").into()),
        }
    }
}

/// A dependency that is down (or slow) fails every request: logged at most
/// once per [`TROUBLE_INTERVAL`] per dependency, with a count, never once per
/// request.
static UNAVAILABLE_LOG: LogEveryPerKind = LogEveryPerKind::new(TROUBLE_INTERVAL);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, _) = self.parts();
        match &self {
            Self::Internal(source) => {
                let error = latchkey_core::causes::chain(source.as_ref());
                tracing::error!(code, error, "request failed");
            }
            Self::Unavailable(what) => {
                if let Some(occurrences) = UNAVAILABLE_LOG.hit(what) {
                    tracing::warn!(code, dependency = *what, occurrences, "request failed");
                }
            }
            Self::Timeout => {
                // Usually a slow dependency: as bounded as one that is down.
                if let Some(occurrences) = UNAVAILABLE_LOG.hit("request timeout") {
                    tracing::warn!(code, occurrences, "request timed out");
                }
            }
            _ => tracing::debug!(code, "request rejected"),
        }
        let problem = self.problem();
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = problem.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(source) => {
                if let Some(occurrences) = UNAVAILABLE_LOG.hit("database error") {
                    tracing::warn!(error = %source, occurrences, "database unavailable");
                }
                Self::Unavailable("database")
            }
            // A conflict no service turned into its own answer (each expected
            // one is an `AuthError`) is a bug, as is an internal store error.
            e @ (StoreError::Conflict { .. } | StoreError::Internal(_)) => {
                Self::Internal(Box::new(e))
            }
        }
    }
}

impl From<latchkey_core::idempotency::IdempotencyError> for ApiError {
    /// A store that does not answer is `503`; a kept answer that does not
    /// open (a master key dropped within a day of sealing it) is a `500`:
    /// running the request again could apply it twice.
    fn from(e: latchkey_core::idempotency::IdempotencyError) -> Self {
        use latchkey_core::idempotency::IdempotencyError;
        match e {
            IdempotencyError::Store(e) => e.into(),
            e @ IdempotencyError::Seal(_) => Self::Internal(Box::new(e)),
        }
    }
}

impl From<latchkey_core::auth::AuthError> for ApiError {
    fn from(e: latchkey_core::auth::AuthError) -> Self {
        use latchkey_core::auth::AuthError;
        match e {
            AuthError::InvalidCredentials => Self::InvalidCredentials,
            AuthError::EmailNotVerified => Self::EmailNotVerified,
            AuthError::Disabled | AuthError::Forbidden | AuthError::BuiltinRole => Self::Forbidden,
            AuthError::SignInAgain => Self::SignInAgain,
            AuthError::InvalidToken => Self::InvalidToken,
            AuthError::InvalidMfaCode => Self::InvalidMfaCode,
            AuthError::MfaConflict | AuthError::Conflict | AuthError::LastAdmin => Self::Conflict,
            AuthError::NotFound => Self::NotFound,
            AuthError::PasskeyRejected => Self::Validation(vec![FieldError {
                field: "credential".into(),
                code: "invalid".into(),
                message: "The authenticator's answer was refused (origin, challenge or format), or this passkey is registered already.".into(),
            }]),
            AuthError::Unchanged => Self::Validation(vec![FieldError {
                field: "new_email".into(),
                code: "unchanged".into(),
                message: "This is the account's address already.".into(),
            }]),
            AuthError::PasskeysUnavailable => Self::Unavailable("passkeys (public_url needs a domain name)"),
            AuthError::Unauthorized => Self::Unauthorized,
            AuthError::ForeignOrigin => Self::CsrfFailed(CsrfCheck::Origin),
            AuthError::Locked { retry_after } => Self::AccountLocked { retry_after },
            AuthError::AttemptsInFlight { retry_after } => Self::RateLimited { retry_after },
            AuthError::WebhookRefused(problem) => webhook_refused(&problem),
            AuthError::TooManyStreams => Self::RateLimited {
                retry_after: latchkey_core::auth::STREAMS_RETRY_AFTER,
            },
            AuthError::BreachCheckUnavailable => Self::Unavailable("breached-password check"),
            AuthError::UnknownRole(name) => field(
                "roles",
                "unknown_role",
                format!(
                    "There is no role {:?}.",
                    name.chars().take(64).collect::<String>()
                ),
            ),
            AuthError::RoleRefused(problem) => role_refused(problem),
            AuthError::BadQuery(parameter) => Self::MalformedRequest(format!(
                "The query parameter {parameter} is not valid."
            )),
            AuthError::UnimportableHash => field(
                "password_hash",
                "unsupported_hash",
                "Not an Argon2 PHC string or a bcrypt hash of cost 16 or less.".into(),
            ),
            AuthError::Store(e) => e.into(),
            // Hashing, signing and built-in templates failing are bugs or
            // broken configuration, never the caller's doing.
            e @ (AuthError::Password(_) | AuthError::Token(_) | AuthError::Template(_)) => {
                Self::Internal(Box::new(e))
            }
        }
    }
}

/// A `validation_failed` answer naming one field.
fn field(name: &str, code: &str, message: String) -> ApiError {
    ApiError::Validation(vec![FieldError {
        field: name.into(),
        code: code.into(),
        message,
    }])
}

/// The answer to a role that may not be created or held.
fn role_refused(problem: latchkey_core::auth::RoleProblem) -> ApiError {
    use latchkey_core::access::{MAX_ROLES, MAX_ROLES_PER_USER, MAX_ROLE_DESCRIPTION};
    use latchkey_core::auth::RoleProblem;
    match problem {
        RoleProblem::BadName => field(
            "name",
            "invalid",
            "Use a lower-case letter, then up to 63 lower-case letters, digits, '_' or '-'.".into(),
        ),
        RoleProblem::UnknownPermission(name) => field(
            "permissions",
            "unknown_permission",
            format!(
                "There is no permission {:?}.",
                name.chars().take(64).collect::<String>()
            ),
        ),
        RoleProblem::BadDescription => field(
            "description",
            "invalid",
            format!("Use at most {MAX_ROLE_DESCRIPTION} characters, without control characters."),
        ),
        RoleProblem::TooManyRoles => field(
            "name",
            "too_many",
            format!("At most {MAX_ROLES} roles can exist."),
        ),
        RoleProblem::TooManyForUser => field(
            "roles",
            "too_many",
            format!("An account holds at most {MAX_ROLES_PER_USER} roles."),
        ),
    }
}

/// The answer to a webhook that may not be saved.
fn webhook_refused(problem: &latchkey_core::auth::WebhookProblem) -> ApiError {
    use latchkey_core::auth::WebhookProblem;
    use latchkey_core::webhooks::target::UrlProblem;
    use latchkey_core::webhooks::SubscriptionProblem;
    match problem {
        WebhookProblem::Url(UrlProblem::PrivateAddress) => field(
            "url",
            "private_address",
            "The URL may not point at a loopback, private, link-local or reserved address.".into(),
        ),
        WebhookProblem::Url(UrlProblem::Scheme) => {
            field("url", "not_https", "Use an https:// URL.".into())
        }
        WebhookProblem::Url(UrlProblem::Credentials) => field(
            "url",
            "invalid",
            "Leave user name and password out of the URL.".into(),
        ),
        WebhookProblem::Url(UrlProblem::Malformed) => field(
            "url",
            "invalid",
            "Use an absolute URL of at most 2048 characters.".into(),
        ),
        WebhookProblem::Events(SubscriptionProblem::Count) => field(
            "events",
            "invalid",
            "List 1 to 64 event types (\"*\" for all, \"alert\" for alerts).".into(),
        ),
        WebhookProblem::Events(SubscriptionProblem::Unknown) => field(
            "events",
            "unknown_event_type",
            "Use the event types of docs/events.md, \"*\" or \"alert\".".into(),
        ),
        WebhookProblem::Description => field(
            "description",
            "invalid",
            format!(
                "Use at most {} characters, without control characters.",
                latchkey_core::webhooks::MAX_DESCRIPTION
            ),
        ),
    }
}

#[cfg(test)]
mod tests;
