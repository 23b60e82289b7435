//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::OpenApi;

use crate::extract::ApiJson;

/// The API description. Every route the router serves is listed here; a test in
/// the integration suite compares this document with the router's route table.
#[derive(OpenApi)]
#[openapi(
    info(title = "latchkey", description = "Self-hosted authentication server: HTTP API v1."),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::metrics::metrics,
        openapi_json,
    ),
    components(schemas(crate::error::Problem, crate::error::FieldError)),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "operations", description = "Metrics and API description"),
    )
)]
pub struct ApiDoc;

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
