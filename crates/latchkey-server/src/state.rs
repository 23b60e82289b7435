//! `AppState`: what every handler can reach. Built once per `Application`; no
//! global singletons (several servers can run in one process, as tests do).

use std::sync::Arc;

use latchkey_adapters::redis::Redis;
use latchkey_core::auth::Auth;
use latchkey_core::clock::Clock;
use latchkey_core::ports::Store;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::{Config, ResolvedSecrets};

/// Shared application state (cheap to clone).
#[derive(Clone)]
pub struct AppState {
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
    /// The sign-in service (hasher, keys, session policy).
    pub auth: Auth,
    /// Cookie-mode sessions and their CSRF defence.
    pub cookies: Arc<crate::cookies::CookieSessions>,
    /// Rate limits and their limiter.
    pub rate_limits: Arc<crate::ratelimit::RateLimits>,
    /// Bounded work left for after an answer.
    pub background: crate::background::Background,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store.backend())
            .field("redis", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}
