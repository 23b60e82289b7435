//! `AppState`: what every handler can reach. Built once per `Application`; no
//! global singletons (several servers can run in one process, as tests do).

use std::sync::Arc;

use latchkey_adapters::redis::Redis;
use latchkey_core::auth::Services;
use latchkey_core::clock::Clock;
use latchkey_core::ports::Store;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::{Config, ResolvedSecrets};

/// Shared application state: one `Arc`, so the clone every request makes
/// (axum hands each handler and stateful middleware its own) is one counter
/// increment, not a copy of the sign-in service's strings and keys. Fields are
/// reached through `Deref` ([`AppStateParts`]).
#[derive(Clone)]
pub struct AppState(Arc<AppStateParts>);

impl AppState {
    /// The state made of `parts`.
    pub fn new(parts: AppStateParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateParts;
    fn deref(&self) -> &AppStateParts {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct AppStateParts {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The database.
    pub store: Arc<dyn Store>,
    /// Redis, when `redis.url` is set.
    pub redis: Option<Arc<Redis>>,
    /// Renders `/metrics`; `None` when metrics are disabled.
    pub metrics: Option<PrometheusHandle>,
    /// The injected clock.
    pub clock: Arc<dyn Clock>,
    /// Server secrets.
    pub secrets: Arc<ResolvedSecrets>,
    /// The sign-in services (sessions, sign-in, accounts, passwords, MFA,
    /// passkeys), each with only its ports and policy.
    pub services: Services,
    /// Cookie-mode sessions and their CSRF defence.
    pub cookies: Arc<crate::cookies::CookieSessions>,
    /// Rate limits and their limiter.
    pub rate_limits: Arc<crate::ratelimit::RateLimits>,
    /// `Idempotency-Key` records.
    pub idempotency: Arc<latchkey_core::idempotency::Idempotency>,
    /// The signing keys as the admin API lists and rotates them.
    pub admin_keys: Arc<crate::keys_admin::AdminKeys>,
}

impl std::fmt::Debug for AppStateParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store.backend())
            .field("redis", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
