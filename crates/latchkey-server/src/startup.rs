//! `Application`: a configured, migrated, bound server, ready to run. The binary and
//! the tests start the server the same way.

use crate::supervise::{supervise, FIRST_RESTART_DELAY};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use latchkey_adapters::redis::Redis;
use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::ports::{PoolOptions, Store, StoreError};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{secrets_resolve_reporting, Config, DatabaseTarget, Problem};
use crate::passes::BackgroundPasses;
use crate::routes;
use crate::serve::{self, Listener};
use crate::state::AppState;
use crate::telemetry;

/// Why the server could not start. `Config` lists every problem at once.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The configuration is refused; one entry per problem.
    #[error("the configuration has {} problem(s)", .0.len())]
    Config(Vec<Problem>),
    /// The database could not be opened or migrated.
    #[error("database ({backend}): {source}")]
    Database {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// What failed.
        #[source]
        source: StoreError,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error(transparent)]
    Tls(#[from] crate::serve::TlsSetupError),
    /// The password hashing parameters were refused.
    #[error("password hashing parameters: {0}")]
    Hashing(#[source] latchkey_core::password::PasswordError),
    /// `tokens.algorithm` names no algorithm latchkey signs with.
    #[error("tokens.algorithm: use EdDSA, ES256 or RS256")]
    Algorithm,
    /// The signing keys could not be loaded or created.
    #[error("signing keys: {0}")]
    Keys(#[source] crate::keys::KeyFileError),
    /// The stored TOTP secrets could not be checked against the keyring.
    #[error("cannot read TOTP key ids: {0}")]
    SealedData(#[source] StoreError),
    /// Stored TOTP secrets are sealed with a key the keyring lacks.
    #[error(
        "TOTP secrets are sealed with encryption key {0}, which is not configured: \
         was secrets.master_key changed? Put the old one in secrets.previous_master_keys \
         (then run `latchkey keys reencrypt`)"
    )]
    MissingSealKey(String),
}

/// Ways to build an [`Application`] other than from configuration alone (tests).
#[derive(Default)]
pub struct BuildOptions {
    /// Extra routes mounted inside the full middleware stack.
    pub extra_routes: Option<Router<AppState>>,
    /// A clock to use instead of the system clock.
    pub clock: Option<Arc<dyn Clock>>,
}

/// A server ready to run.
pub struct Application {
    state: AppState,
    main: Listener,
    metrics: Option<Listener>,
    mailer: Arc<dyn latchkey_core::mail::Mailer>,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    secret_origins: crate::config::SecretOrigins,
    passes: BackgroundPasses,
    webhook_sender: Arc<dyn latchkey_core::webhooks::WebhookSender>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The store as the server shares it between tasks.
pub type SharedStore = Arc<dyn Store>;

/// Opens (creating if needed) and migrates the configured database.
pub async fn open_store(config: &Config) -> Result<SharedStore, StartupError> {
    let pool = PoolOptions {
        max_connections: config.database.max_connections,
        min_connections: config.database.min_connections,
        acquire_timeout: Duration::from_millis(config.database.acquire_timeout_ms),
    };
    let target = config
        .database_target()
        .map_err(|m| StartupError::Config(vec![Problem::new("database.url", m)]))?;
    let store: Arc<dyn Store> = match target {
        DatabaseTarget::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                crate::config::create_private_dir(parent).map_err(|e| StartupError::Database {
                    backend: "sqlite",
                    source: StoreError::Unavailable(Box::new(e)),
                })?;
            }
            let busy = Duration::from_millis(config.database.sqlite_busy_timeout_ms);
            let store = latchkey_store_sqlite::open(&path, &pool, busy)
                .await
                .map_err(|source| StartupError::Database {
                    backend: "sqlite",
                    source,
                })?;
            Arc::new(store)
        }
        DatabaseTarget::Postgres(url) => {
            let store = latchkey_store_postgres::connect(&url, &pool)
                .await
                .map_err(|source| StartupError::Database {
                    backend: "postgres",
                    source,
                })?;
            Arc::new(store)
        }
    };
    store
        .migrate()
        .await
        .map_err(|source| StartupError::Database {
            backend: store.backend(),
            source,
        })?;
    // Addresses stored under older normalization rules (a no-op query once done).
    let renormalized = latchkey_core::account::renormalize_emails(store.as_ref())
        .await
        .map_err(|source| StartupError::Database {
            backend: store.backend(),
            source,
        })?;
    if renormalized != latchkey_core::account::Renormalized::default() {
        tracing::info!(
            updated = renormalized.updated,
            collisions = renormalized.collisions,
            "stored email addresses normalized under the current rules"
        );
    }
    Ok(store)
}

/// Keeps the webhooks of `[[webhooks.endpoints]]` in line with the
/// configuration (secrets sealed under the master key), and makes the
/// delivery positions that do not exist yet at the chain head.
async fn sync_static_webhooks(
    config: &Config,
    store: &SharedStore,
    secrets: &crate::config::ResolvedSecrets,
    now: time::OffsetDateTime,
) -> Result<(), StartupError> {
    let checked = config.static_webhooks().map_err(StartupError::Config)?;
    let settings = crate::auth_setup::webhook_settings(config, secrets);
    let webhooks: Vec<latchkey_core::webhooks::NewWebhook> = checked
        .iter()
        .map(|w| {
            let id = latchkey_core::webhooks::static_id(&w.name);
            latchkey_core::webhooks::NewWebhook {
                id,
                url: w.url.clone(),
                events: w.events.clone(),
                description: None,
                secret_sealed: settings.seal_secret(id, &w.secret),
                // Signs alongside for as long as it is configured.
                previous: w.previous.as_ref().map(|p| {
                    (
                        settings.seal_secret(id, p),
                        now + time::Duration::days(3650),
                    )
                }),
                static_name: Some(w.name.clone()),
                created_at: now,
            }
        })
        .collect();
    let positions = [
        Some(latchkey_core::webhooks::DISPATCH_CURSOR),
        config
            .events
            .redis_stream
            .as_ref()
            .map(|_| crate::event_delivery::STREAM_POSITION),
    ];
    let synced = async {
        store.sync_static_webhooks(&webhooks).await?;
        // Before serving: every event committed from now on is delivered.
        for name in positions.into_iter().flatten() {
            store.ensure_position(name).await?;
        }
        Ok(())
    };
    synced.await.map_err(|source| StartupError::Database {
        backend: store.backend(),
        source,
    })
}

/// Refuses a configuration with problems (all of them at once); logs its
/// warnings.
fn validated(config: &Config) -> Result<(), StartupError> {
    let (problems, warnings) = config.validate();
    if !problems.is_empty() {
        return Err(StartupError::Config(problems));
    }
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind { addr, source })
}

impl Application {
    /// Validates the configuration, resolves secrets (generating dev ones), opens and
    /// migrates the database, and binds the listeners.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        Self::build_with(config, BuildOptions::default()).await
    }

    /// [`Application::build`] with test hooks.
    pub async fn build_with(
        mut config: Config,
        options: BuildOptions,
    ) -> Result<Self, StartupError> {
        validated(&config)?;
        let (secrets, secret_origins) =
            secrets_resolve_reporting(&config).map_err(|p| StartupError::Config(vec![p]))?;
        let mailer =
            crate::auth_setup::mailer(&config).map_err(|p| StartupError::Config(vec![p]))?;
        let tls = match (&config.tls.cert, &config.tls.key) {
            (Some(cert), Some(key)) => Some(serve::tls_acceptor(cert, key)?),
            _ => None,
        };
        let socket = bind(config.listen).await?;
        let addr = socket.local_addr().map_err(|source| StartupError::Bind {
            addr: config.listen,
            source,
        })?;
        if config.public_url.is_none() {
            // Dev default: the address actually bound (not port 0).
            let scheme = if tls.is_some() { "https" } else { "http" };
            config.public_url = Some(format!("{scheme}://{addr}"));
        }
        let store = open_store(&config).await?;
        let redis = match &config.redis.url {
            Some(url) => Some(Arc::new(Redis::new(url).map_err(|_| {
                StartupError::Config(vec![Problem::new("redis.url", "is not a valid Redis URL")])
            })?)),
            None => None,
        };
        let metrics = config.metrics.enabled.then(telemetry::prometheus).flatten();
        let clock: Arc<dyn Clock> = options.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let services =
            crate::auth_setup::build(&config, Arc::clone(&store), &secrets, Arc::clone(&clock))
                .await?;
        crate::auth_setup::check_sealed_data(&services).await?;
        sync_static_webhooks(&config, &store, &secrets, clock.now()).await?;
        let webhook_sender = crate::event_delivery::sender(&config)?;
        // Compute the dummy hash now, so even the first unknown-email login costs
        // exactly what a wrong password costs.
        services.passwords.hasher().verify_dummy("").await;
        let cookies = Arc::new(crate::cookies::CookieSessions::new(&config, &secrets));
        let rate_limits = Arc::new(crate::ratelimit::RateLimits::from_config(
            &config,
            redis.as_ref(),
            Arc::clone(&clock),
        ));
        let idempotency = crate::auth_setup::idempotency(&config, &store, &secrets, &clock);
        let state = AppState::new(crate::state::AppStateParts {
            // Built first: the fields after it take the config and store.
            admin_keys: Arc::new(crate::keys_admin::AdminKeys::new(
                &config, &store, &secrets,
            )?),
            config: Arc::new(config),
            store,
            redis,
            metrics,
            clock,
            secrets: Arc::new(secrets),
            services,
            cookies,
            rate_limits,
            idempotency,
        });
        let config = &state.config;
        let header_timeout = Duration::from_millis(config.http.header_read_timeout_ms);
        let grace = Duration::from_millis(config.http.shutdown_grace_ms);
        let main = Listener {
            socket,
            router: routes::router(&state, options.extra_routes),
            tls,
            header_timeout,
            grace,
            connections: serve::ConnectionLimits::from_config(config),
        };
        let (metrics, metrics_addr) = match (config.metrics.listen, state.metrics.is_some()) {
            (Some(listen), true) => {
                let socket = bind(listen).await?;
                let bound = socket.local_addr().map_err(|source| StartupError::Bind {
                    addr: listen,
                    source,
                })?;
                let listener = Listener {
                    socket,
                    router: routes::metrics_router(&state),
                    tls: None,
                    header_timeout,
                    grace,
                    connections: serve::ConnectionLimits::from_config(config),
                };
                (Some(listener), Some(bound))
            }
            _ => (None, None),
        };
        Ok(Self {
            state,
            main,
            metrics,
            mailer,
            addr,
            metrics_addr,
            secret_origins,
            passes: BackgroundPasses::default(),
            webhook_sender,
        })
    }

    /// What this server runs with, a few lines for the start-up log
    /// ([`crate::summary::lines`]): never a secret or a password.
    pub fn summary(&self) -> Vec<String> {
        crate::summary::lines(
            &self.state.config,
            &crate::summary::StartFacts {
                secrets: self.secret_origins.clone(),
                metrics_addr: self.metrics_addr,
                metrics_served: self.state.metrics.is_some(),
            },
        )
    }

    /// The address the main listener bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The separate metrics listener's address, when `metrics.listen` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Whether the main listener speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.main.tls.is_some()
    }

    /// The shared state (tests reach the store through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The pass reports of the background loops [`Application::run_until`]
    /// starts (the outbox worker, the signing-key watcher): a clone taken
    /// before running lets a caller wait for a loop's next pass, or ask for
    /// one at once, instead of sleeping.
    pub fn passes(&self) -> &BackgroundPasses {
        &self.passes
    }

    /// Serves until `shutdown` completes, then stops accepting, lets in-flight
    /// requests finish (bounded by `http.shutdown_grace_ms`), and closes the pools.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let main = tokio::spawn(serve::run(self.main, stop_rx.clone()));
        // Background tasks are supervised: a panic restarts the task instead
        // of ending it silently while the server goes on answering.
        let key_watch = tokio::spawn(supervise(
            "key_watch",
            stop_rx.clone(),
            FIRST_RESTART_DELAY,
            {
                let (state, stop) = (self.state.clone(), stop_rx.clone());
                let passes = self.passes.key_watch.clone();
                move || crate::auth_setup::watch_keys(&state, stop.clone(), passes.clone())
            },
        ));
        let cleanup = tokio::spawn(supervise(
            "cleanup",
            stop_rx.clone(),
            FIRST_RESTART_DELAY,
            {
                let (state, stop) = (self.state.clone(), stop_rx.clone());
                move || {
                    crate::cleanup_task::run(
                        Arc::clone(&state.store),
                        Arc::clone(&state.clock),
                        Duration::from_secs(state.config.cleanup.interval_seconds),
                        stop.clone(),
                    )
                }
            },
        ));
        let mail_worker = tokio::spawn(supervise(
            "mail_worker",
            stop_rx.clone(),
            FIRST_RESTART_DELAY,
            {
                let (state, mailer, stop) = (
                    self.state.clone(),
                    Arc::clone(&self.mailer),
                    stop_rx.clone(),
                );
                let passes = self.passes.outbox.clone();
                move || {
                    crate::mail_worker::Worker::new(
                        Arc::clone(&state.store),
                        Arc::clone(&mailer),
                        Arc::clone(&state.services.outbox),
                        Arc::clone(&state.clock),
                        crate::mail_worker::OutboxSettings::from_config(&state.config.mail),
                    )
                    .run(stop.clone(), passes.clone())
                }
            },
        ));
        let event_delivery = spawn_event_delivery(
            &self.state,
            &self.webhook_sender,
            &self.passes.events,
            &stop_rx,
        );
        // With Redis, cache drops (logout, revocation, profile changes) reach
        // the other nodes at once instead of within the cache TTL.
        let (stop_publishing_tx, stop_publishing) = watch::channel(false);
        let cache_bus = self.state.redis.as_ref().map(|redis| {
            crate::cache_bus::connect(
                &self.state.services.cache,
                &self.state.services.live,
                redis,
                &crate::cache_bus::channel(&self.state.config.redis.key_prefix),
                stop_rx.clone(),
                stop_publishing,
            )
        });
        let metrics = self.metrics.map(|l| tokio::spawn(serve::run(l, stop_rx)));
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        // Live event streams never end by themselves: they end now, so the
        // drain waits for requests, not for their clients.
        self.state.services.live.close();
        let _ = stop_tx.send(true);
        let _ = main.await;
        // Requests have drained: their cache drops can go out, then the bus stops.
        let _ = stop_publishing_tx.send(true);
        let _ = key_watch.await;
        let _ = mail_worker.await;
        let _ = event_delivery.await;
        let _ = cleanup.await;
        if let Some(bus) = cache_bus {
            let _ = bus.publisher.await;
            let _ = bus.subscriber.await;
        }
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        self.state.store.close().await;
        tracing::info!("stopped");
    }
}

/// Starts the supervised event delivery worker (`event_delivery`).
fn spawn_event_delivery(
    state: &AppState,
    sender: &Arc<dyn latchkey_core::webhooks::WebhookSender>,
    passes: &crate::passes::Passes,
    stop: &watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let (state, sender, stop_worker, passes) = (
        state.clone(),
        Arc::clone(sender),
        stop.clone(),
        passes.clone(),
    );
    tokio::spawn(supervise(
        "event_delivery",
        stop.clone(),
        FIRST_RESTART_DELAY,
        move || {
            crate::event_delivery::Worker::new(
                Arc::clone(&state.store),
                Arc::clone(&sender),
                crate::auth_setup::webhook_settings(&state.config, &state.secrets),
                Arc::clone(&state.clock),
                crate::event_delivery::DeliverySettings::from_config(&state.config),
                state.redis.clone(),
            )
            .run(
                stop_worker.clone(),
                state.services.live.commits(),
                passes.clone(),
            )
        },
    ))
}

/// A future that resolves when the process receives SIGINT or SIGTERM. The
/// handlers are installed when this is called, not when the future is first
/// polled: a signal arriving between start-up and serving (e.g. right after
/// the address is printed) still means a graceful stop, never the default
/// "terminate at once". Call it before announcing the server.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, Signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            async fn received(s: Option<Signal>) {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => futures::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = received(term) => {},
                () = received(int) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
