use super::*;
use latchkey_core::auth::AuthError;

fn boxed() -> Box<dyn std::error::Error + Send + Sync> {
    "boom".into()
}

/// One of each variant, with the status and code API.md gives it. The
/// match in `listed` has no wildcard: a new variant fails to compile
/// until it has a row here.
fn table() -> Vec<(ApiError, u16, &'static str)> {
    fn listed(e: &ApiError) {
        match e {
            ApiError::MalformedRequest(_)
            | ApiError::Validation(_)
            | ApiError::Unauthorized
            | ApiError::InvalidCredentials
            | ApiError::InvalidToken
            | ApiError::InvalidMfaCode
            | ApiError::EmailNotVerified
            | ApiError::Forbidden
            | ApiError::SignInAgain
            | ApiError::CsrfFailed(_)
            | ApiError::Conflict
            | ApiError::IdempotencyConflict(_)
            | ApiError::NotFound
            | ApiError::MethodNotAllowed
            | ApiError::PayloadTooLarge
            | ApiError::UnsupportedMediaType
            | ApiError::UriTooLong
            | ApiError::HeaderFieldsTooLarge
            | ApiError::AccountLocked { .. }
            | ApiError::RateLimited { .. }
            | ApiError::Unavailable(_)
            | ApiError::Timeout
            | ApiError::Internal(_) => {}
        }
    }
    let rows = vec![
        (
            ApiError::MalformedRequest("x".into()),
            400,
            "malformed_request",
        ),
        (ApiError::Validation(Vec::new()), 400, "validation_failed"),
        (ApiError::Unauthorized, 401, "unauthorized"),
        (ApiError::InvalidCredentials, 401, "invalid_credentials"),
        (ApiError::InvalidToken, 401, "invalid_token"),
        (ApiError::InvalidMfaCode, 401, "invalid_mfa_code"),
        (ApiError::EmailNotVerified, 403, "email_not_verified"),
        (ApiError::Forbidden, 403, "forbidden"),
        (ApiError::SignInAgain, 403, "reauthentication_required"),
        (ApiError::CsrfFailed(CsrfCheck::Origin), 403, "csrf_failed"),
        (ApiError::CsrfFailed(CsrfCheck::Token), 403, "csrf_failed"),
        (ApiError::Conflict, 409, "conflict"),
        (
            ApiError::IdempotencyConflict(latchkey_core::idempotency::Conflict::InFlight),
            409,
            "idempotency_conflict",
        ),
        (
            ApiError::IdempotencyConflict(latchkey_core::idempotency::Conflict::OtherBody),
            409,
            "idempotency_conflict",
        ),
        (ApiError::NotFound, 404, "not_found"),
        (ApiError::MethodNotAllowed, 405, "method_not_allowed"),
        (ApiError::PayloadTooLarge, 413, "payload_too_large"),
        (
            ApiError::UnsupportedMediaType,
            415,
            "unsupported_media_type",
        ),
        (ApiError::UriTooLong, 414, "uri_too_long"),
        (
            ApiError::HeaderFieldsTooLarge,
            431,
            "header_fields_too_large",
        ),
        (
            ApiError::AccountLocked { retry_after: 7 },
            423,
            "account_locked",
        ),
        (
            ApiError::RateLimited { retry_after: 3 },
            429,
            "rate_limited",
        ),
        (ApiError::Unavailable("database"), 503, "unavailable"),
        (ApiError::Timeout, 503, "unavailable"),
        (ApiError::Internal(boxed()), 500, "internal"),
    ];
    for (e, _, _) in &rows {
        listed(e);
    }
    rows
}

#[tokio::test]
async fn every_error_has_its_status_code_and_problem_body() {
    for (error, status, code) in table() {
        let problem = error.problem();
        assert_eq!((problem.status, problem.code), (status, code), "{error:?}");
        assert_eq!(problem.kind, format!("/problems/{code}"));
        assert!(!problem.detail.contains("boom"), "no internal detail leaks");
        let retry = problem.retry_after;
        let response = error.into_response();
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        // Retry-After exactly on 423 and 429, with the body's value.
        match status {
            423 | 429 => {
                let seconds = retry.expect("retry_after in the body");
                assert_eq!(
                    response.headers()[header::RETRY_AFTER],
                    seconds.to_string().as_str()
                );
            }
            _ => {
                assert!(retry.is_none(), "{code}");
                assert!(!response.headers().contains_key(header::RETRY_AFTER));
            }
        }
    }
}

#[test]
fn service_errors_map_to_their_answers() {
    let cases: Vec<(AuthError, u16, &str)> = vec![
        (AuthError::InvalidCredentials, 401, "invalid_credentials"),
        (AuthError::EmailNotVerified, 403, "email_not_verified"),
        (AuthError::Disabled, 403, "forbidden"),
        (AuthError::SignInAgain, 403, "reauthentication_required"),
        (AuthError::InvalidToken, 401, "invalid_token"),
        (AuthError::InvalidMfaCode, 401, "invalid_mfa_code"),
        (AuthError::MfaConflict, 409, "conflict"),
        (AuthError::Conflict, 409, "conflict"),
        (AuthError::NotFound, 404, "not_found"),
        (AuthError::PasskeyRejected, 400, "validation_failed"),
        (AuthError::Unchanged, 400, "validation_failed"),
        (AuthError::PasskeysUnavailable, 503, "unavailable"),
        (AuthError::Unauthorized, 401, "unauthorized"),
        (AuthError::ForeignOrigin, 403, "csrf_failed"),
        (AuthError::Locked { retry_after: 9 }, 423, "account_locked"),
        (
            AuthError::AttemptsInFlight { retry_after: 1 },
            429,
            "rate_limited",
        ),
        (AuthError::BreachCheckUnavailable, 503, "unavailable"),
        (AuthError::Forbidden, 403, "forbidden"),
        (AuthError::BuiltinRole, 403, "forbidden"),
        (AuthError::LastAdmin, 409, "conflict"),
        (AuthError::UnknownRole("x".into()), 400, "validation_failed"),
        (AuthError::BadQuery("cursor"), 400, "malformed_request"),
        (AuthError::UnimportableHash, 400, "validation_failed"),
        (
            AuthError::RoleRefused(latchkey_core::auth::RoleProblem::BadName),
            400,
            "validation_failed",
        ),
        (
            AuthError::RoleRefused(latchkey_core::auth::RoleProblem::UnknownPermission(
                "x".into(),
            )),
            400,
            "validation_failed",
        ),
        (
            AuthError::RoleRefused(latchkey_core::auth::RoleProblem::BadDescription),
            400,
            "validation_failed",
        ),
        (
            AuthError::RoleRefused(latchkey_core::auth::RoleProblem::TooManyRoles),
            400,
            "validation_failed",
        ),
        (
            AuthError::RoleRefused(latchkey_core::auth::RoleProblem::TooManyForUser),
            400,
            "validation_failed",
        ),
        (
            AuthError::Store(StoreError::Unavailable(boxed())),
            503,
            "unavailable",
        ),
        (
            AuthError::Store(StoreError::Internal(boxed())),
            500,
            "internal",
        ),
    ];
    for (error, status, code) in cases {
        let text = format!("{error:?}");
        let problem = ApiError::from(error).problem();
        assert_eq!((problem.status, problem.code), (status, code), "{text}");
    }
    // A store conflict no service expected is a bug: 500, never a 409
    // that would tell a caller something about the data.
    let conflict = StoreError::Conflict {
        constraint: "users_email_normalized",
    };
    assert_eq!(ApiError::from(conflict).problem().status, 500);
}
