//! Liveness and readiness.

use std::time::Duration;

use axum::extract::State;
use serde::Serialize;

use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;
use crate::state::AppState;

/// How long each dependency gets to answer a readiness probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Body of a healthy answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: answers while the process serves HTTP, touching no dependency.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is alive", body = Health)))]
pub async fn healthz() -> ApiJson<Health> {
    ApiJson(Health { status: "ok" })
}

/// Readiness: the database (and Redis, when configured) answer within
/// [`PROBE_TIMEOUT`]; otherwise a 503 problem naming what failed.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Every dependency answers", body = Health),
        (status = 503, description = "A dependency is down (`unavailable`); the detail names it", body = Problem,
            content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<ApiJson<Health>, ApiError> {
    let database = async {
        matches!(
            tokio::time::timeout(PROBE_TIMEOUT, state.store.ping()).await,
            Ok(Ok(()))
        )
    };
    let redis = async {
        match &state.redis {
            Some(redis) => redis.ping(PROBE_TIMEOUT).await.is_ok(),
            None => true,
        }
    };
    match tokio::join!(database, redis) {
        (true, true) => Ok(ApiJson(Health { status: "ok" })),
        (false, true) => Err(ApiError::Unavailable("database")),
        (true, false) => Err(ApiError::Unavailable("redis")),
        (false, false) => Err(ApiError::Unavailable("database and redis")),
    }
}
