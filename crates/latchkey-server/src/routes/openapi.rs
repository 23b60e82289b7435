//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::OpenApi;

use crate::extract::ApiJson;

/// The API description. Every route the router serves is listed here; a test in
/// the integration suite compares this document with the router's route table.
#[derive(OpenApi)]
#[openapi(
    info(title = "latchkey", description = "Self-hosted authentication server: HTTP API v1.\n\n\
        Every error is `application/problem+json` with a stable `code` and a `request_id`. \
        Besides the answers listed per operation, any request may get `413 payload_too_large` \
        (body over `http.body_limit_bytes`), `414 uri_too_long` (request target over 8 KiB), \
        `415 unsupported_media_type` (a JSON body without a JSON content type), \
        `431 header_fields_too_large` (over 100 headers or 32 KiB of them) and `429 rate_limited` (the \
        per-IP rules, among them `unauthenticated-ip` for refused tokens); `Retry-After` \
        comes with every 423 and 429. Every operation lists `500 internal` and `503 unavailable` \
        (a dependency down, or the request timeout)."),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::metrics::metrics,
        openapi_json,
        super::well_known::jwks,
        super::well_known::openid_configuration,
        super::auth::signup::signup,
        super::auth::signup::verify,
        super::auth::signup::resend,
        super::auth::login::login,
        super::auth::login_mfa::login_mfa,
        super::auth::login_webauthn::start,
        super::auth::login_webauthn::finish,
        super::password_policy::policy,
        super::auth::password_reset::forgot,
        super::auth::password_reset::reset,
        super::auth::refresh::refresh,
        super::auth::logout::logout,
        super::auth::csrf::csrf,
        super::introspect::introspect,
        super::me::profile::get_me,
        super::me::profile::patch_me,
        super::me::password::change_password,
        super::me::email::change_email,
        super::me::security::security,
        super::me::events::list,
        super::me::event_stream::stream,
        super::me::mfa::start_totp,
        super::me::mfa::confirm_totp,
        super::me::mfa::delete_totp,
        super::me::mfa::regenerate_recovery_codes,
        super::me::webauthn::register_start,
        super::me::webauthn::register_finish,
        super::me::webauthn::list,
        super::me::webauthn::rename,
        super::me::webauthn::delete,
        super::me::sessions::list,
        super::me::sessions::revoke_all,
        super::me::sessions::revoke_one,
        super::admin::users::list,
        super::admin::users::create,
        super::admin::users::get,
        super::admin::users::delete,
        super::admin::users::patch,
        super::admin::users::disable,
        super::admin::users::enable,
        super::admin::users::unlock,
        super::admin::users::logout,
        super::admin::users::set_roles,
        super::admin::roles::list,
        super::admin::roles::create,
        super::admin::roles::delete,
        super::admin::audit::list,
        super::admin::keys::list,
        super::admin::keys::rotate,
        super::admin::webhooks::list,
        super::admin::webhooks::create,
        super::admin::webhooks::delete,
        super::admin::webhooks::rotate_secret,
        super::admin::dead_letters::list,
        super::admin::dead_letters::retry,
        super::pages::verify_email,
        super::pages::reset_password,
        super::pages::script,
        super::pages::stylesheet,
    ),
    components(schemas(
        crate::error::Problem,
        crate::error::FieldError,
        super::auth::login::MfaRequired
    )),
    modifiers(&BearerAuth, &IdempotencyKeys, &EveryOperation),
    tags(
        (name = "auth", description = "Sign-in, token refresh, sign-out"),
        (name = "me", description = "The signed-in user"),
        (name = "admin", description = "Administration: accounts, roles and signing keys (by the caller's current permissions)"),
        (name = "tokens", description = "Signing keys and discovery"),
        (name = "health", description = "Liveness and readiness"),
        (name = "pages", description = "latchkey's own pages for mailed links (`[pages]`; on in dev)"),
        (name = "operations", description = "Metrics and API description"),
    )
)]
pub struct ApiDoc;

/// Declares the security schemes: `bearer` (access token in `Authorization`),
/// `cookie` (cookie mode) and `basic` (introspection clients).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "__Host-lk_session",
                "Cookie mode (`\"mode\": \"cookie\"` at login; name configurable). Unsafe methods \
                 also need `X-CSRF-Token` (the session's CSRF token) and an allowed `Origin`, \
                 else 403 `csrf_failed`.",
            ))),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// Adds the optional `Idempotency-Key` header and its `409
/// idempotency_conflict` to every operation that honours it (the same rule
/// the middleware applies: [`crate::middleware::idempotency::applies`]).
struct IdempotencyKeys;

impl utoipa::Modify for IdempotencyKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use axum::http::Method;
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ObjectBuilder, Required, Type};
        for (path, item) in &mut openapi.paths.paths {
            for (method, operation) in [
                (Method::POST, item.post.as_mut()),
                (Method::PUT, item.put.as_mut()),
                (Method::PATCH, item.patch.as_mut()),
                (Method::DELETE, item.delete.as_mut()),
            ] {
                let Some(operation) = operation else { continue };
                if !crate::middleware::idempotency::applies(&method, path) {
                    continue;
                }
                let parameter = ParameterBuilder::new()
                    .name("Idempotency-Key")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "1 to 255 visible ASCII characters. For 24 h a repeat with the same body \
                         gets the first answer again (with `Idempotent-Replayed: true`) instead of \
                         running; a malformed key is 400 `malformed_request`.",
                    ))
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .min_length(Some(1))
                            .max_length(Some(latchkey_core::idempotency::MAX_KEY_LEN)),
                    ))
                    .build();
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .push(parameter);
                let responses = &mut operation.responses.responses;
                add_problem(
                    responses,
                    "409",
                    "`idempotency_conflict`: this Idempotency-Key was used with another body, \
                     or its first request still runs",
                );
                add_problem(
                    responses,
                    "400",
                    "`malformed_request`: a malformed Idempotency-Key",
                );
            }
        }
    }
}

/// Adds the two answers any operation may give to every operation: `500
/// internal` (a bug: a panic or an unexpected store error, logged with the
/// request id) and `503 unavailable` (a dependency — the database, Redis when
/// a shared limit fails closed — cannot serve now, or the request ran past
/// `http.request_timeout_ms`; retry later).
struct EveryOperation;

impl utoipa::Modify for EveryOperation {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                let responses = &mut operation.responses.responses;
                add_problem(
                    responses,
                    "503",
                    "`unavailable`: a dependency (the database; Redis when a shared rate limit \
                     fails closed) cannot serve now, or the request ran past \
                     `http.request_timeout_ms`; retry later",
                );
                add_problem(
                    responses,
                    "500",
                    "`internal`: an unexpected failure, logged with the request id (never \
                     details in the answer)",
                );
            }
        }
    }
}

/// Adds `note` to the `status` answer of `responses`, or the answer itself
/// (a problem) when the operation lists none.
fn add_problem(
    responses: &mut std::collections::BTreeMap<
        String,
        utoipa::openapi::RefOr<utoipa::openapi::Response>,
    >,
    status: &str,
    note: &str,
) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    if let Some(RefOr::T(existing)) = responses.get_mut(status) {
        existing.description = format!("{}; or {note}", existing.description);
        return;
    }
    let problem = ResponseBuilder::new()
        .description(note)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build();
    responses.insert(status.to_owned(), RefOr::T(problem));
}

/// The document, with the server version filled in.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    env!("CARGO_PKG_VERSION").clone_into(&mut doc.info.version);
    doc
}

/// This OpenAPI 3.1 document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub async fn openapi_json() -> ApiJson<utoipa::openapi::OpenApi> {
    ApiJson(document())
}
