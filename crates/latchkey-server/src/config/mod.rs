//! The configuration tree: one typed struct per section, every field with a
//! documented default (see `docs/configuration.md`).
//!
//! Layering (later wins): built-in defaults < `latchkey.toml` (or `--config PATH`) <
//! environment `LATCHKEY_*` (sections nested with `__`, e.g. `LATCHKEY_DATABASE__URL`)
//! < command-line flags. Unknown keys in the file are errors; unknown `LATCHKEY_*`
//! variables are warned about, so a typo never passes silently.

mod auth;
mod cookies;
mod describe;
mod events;
mod load;
mod logging;
mod mail;
mod pages;
mod rate_limit;
mod secret;
mod secrets;
mod show;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use auth::{
    AuthConfig, BreachMode, CleanupConfig, IntrospectionClient, IntrospectionConfig,
    KeyStorageKind, LockoutConfig, PasswordConfig, SessionsConfig, TokensConfig,
};
pub use cookies::CookiesConfig;
pub use events::{CheckedWebhook, EventsConfig, StaticWebhook, WebhooksConfig};
pub use load::{ConfigError, Loaded, Overrides};
pub use logging::{LogConfig, LogFormat};
pub use mail::{MailConfig, MailTransport, OutboxConfig, SmtpConfig, SmtpTls};
pub use pages::{PagesConfig, RESET_PAGE, VERIFY_PAGE};
pub use rate_limit::{default_rules, LimitKey, RateLimitConfig, RateLimitRule, RouteGroup};
pub use secret::Secret;
pub(crate) use secrets::create_private_dir;
pub use secrets::{
    resolve as secrets_resolve, resolve_reporting as secrets_resolve_reporting,
    weakness as secret_weakness, ResolvedSecrets, SecretOrigin, SecretOrigins, SecretsConfig,
    MIN_SECRET_BYTES,
};
pub use show::show;
pub use validate::Problem;

/// How strict start-up is. `dev` generates missing secrets; `production` refuses to
/// start on anything unsafe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Local development: missing secrets are generated into the data directory.
    #[default]
    Dev,
    /// Production: every secret must be configured; plain-HTTP public URLs refused.
    Production,
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `dev` (default) or `production`.
    pub mode: Mode,
    /// Address the HTTP listener binds. Port 0 picks a free port (printed at start).
    pub listen: SocketAddr,
    /// Directory for the SQLite database, generated dev secrets and dev mail.
    pub data_dir: PathBuf,
    /// The URL clients use to reach this server (links in mail, cookie security,
    /// HSTS). Required and must be https in production; in dev it defaults to
    /// `http://<listen>`.
    pub public_url: Option<String>,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` headers are believed
    /// (CIDRs, or single addresses). Empty (default): the socket peer is the client.
    #[serde(deserialize_with = "deserialize_networks")]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The one forwarding header the trusted proxies write and latchkey reads:
    /// `x-forwarded-for` (default), `forwarded` or `x-real-ip`.
    pub trusted_proxies_header: crate::client::ForwardedHeader,
    /// Sign-up and login policy.
    pub auth: AuthConfig,
    /// Session lifetimes and limits.
    pub sessions: SessionsConfig,
    /// Access and refresh tokens.
    pub tokens: TokensConfig,
    /// Signing-key rotation.
    pub keys: KeysConfig,
    /// Password rules and hashing cost.
    pub password: PasswordConfig,
    /// Outgoing mail.
    pub mail: MailConfig,
    /// Removal of expired data.
    pub cleanup: CleanupConfig,
    /// Token introspection clients.
    pub introspection: IntrospectionConfig,
    /// Cookie-mode browser sessions.
    pub cookies: CookiesConfig,
    /// Passkeys (WebAuthn).
    pub webauthn: WebauthnConfig,
    /// latchkey's own verification and reset pages.
    pub pages: PagesConfig,
    /// Rate limits.
    pub rate_limit: RateLimitConfig,
    /// Login lockout.
    pub lockout: LockoutConfig,
    /// Database connection.
    pub database: DatabaseConfig,
    /// Optional Redis (shared rate limits, revocation fan-out in clustered mode).
    pub redis: RedisConfig,
    /// HTTP limits and timeouts.
    pub http: HttpConfig,
    /// Cross-origin resource sharing.
    pub cors: CorsConfig,
    /// Native TLS (optional; usually a reverse proxy terminates TLS).
    pub tls: TlsConfig,
    /// Prometheus metrics.
    pub metrics: MetricsConfig,
    /// Logging.
    pub log: LogConfig,
    /// Live event streams, the Redis stream of events, alerting.
    pub events: EventsConfig,
    /// Delivery of events to webhook endpoints.
    pub webhooks: WebhooksConfig,
    /// Server secrets (each also readable from a file).
    pub secrets: SecretsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Dev,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./latchkey-data"),
            public_url: None,
            trusted_proxies: Vec::new(),
            trusted_proxies_header: crate::client::ForwardedHeader::default(),
            auth: AuthConfig::default(),
            sessions: SessionsConfig::default(),
            tokens: TokensConfig::default(),
            keys: KeysConfig::default(),
            password: PasswordConfig::default(),
            mail: MailConfig::default(),
            cleanup: CleanupConfig::default(),
            introspection: IntrospectionConfig::default(),
            cookies: CookiesConfig::default(),
            webauthn: WebauthnConfig::default(),
            pages: PagesConfig::default(),
            rate_limit: RateLimitConfig::default(),
            lockout: LockoutConfig::default(),
            database: DatabaseConfig::default(),
            redis: RedisConfig::default(),
            http: HttpConfig::default(),
            cors: CorsConfig::default(),
            tls: TlsConfig::default(),
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
            events: EventsConfig::default(),
            webhooks: WebhooksConfig::default(),
            secrets: SecretsConfig::default(),
        }
    }
}

/// How long `/.well-known/jwks.json` may be cached (its `Cache-Control`).
pub const JWKS_MAX_AGE_SECONDS: u64 = 300;

/// `[keys]`: signing-key rotation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// A rotated key is published at once but signs only this many seconds
    /// later, so resource servers caching the JWKS know it before the first
    /// token it signs (`latchkey keys rotate --now` skips the wait).
    pub publish_ahead_seconds: u64,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            // The JWKS cache lifetime plus a minute of margin.
            publish_ahead_seconds: JWKS_MAX_AGE_SECONDS + 60,
        }
    }
}

/// Which database engine a URL selects (`Debug` hides a password in the URL).
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseTarget {
    /// An SQLite file (created when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL server; the URL as configured.
    Postgres(String),
}

impl std::fmt::Debug for DatabaseTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(url) => f
                .debug_tuple("Postgres")
                .field(&without_password(url))
                .finish(),
        }
    }
}

/// `[database]` (`Debug` hides a password in the URL)
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://user:pass@host/db`, `sqlite:PATH`, or unset for
    /// `<data_dir>/latchkey.db`.
    pub url: Option<String>,
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// Connections kept open while idle.
    pub min_connections: u32,
    /// How long a request waits for a connection before answering 503.
    pub acquire_timeout_ms: u64,
    /// How long SQLite waits on a locked database before giving up.
    pub sqlite_busy_timeout_ms: u64,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.url.as_deref().map(without_password))
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .field("sqlite_busy_timeout_ms", &self.sqlite_busy_timeout_ms)
            .finish()
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.url.as_deref().map(without_password))
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

/// `url` with any password replaced by `***`, for `Debug` and logs: the one
/// of its user part (`scheme://user:PASSWORD@host`) and the value of a
/// `password`, `pass`, `passwd`, `pwd` or `sslpassword` query parameter.
pub(crate) fn without_password(url: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => {
                    let userinfo = &rest[..at];
                    let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
                    let hidden = if userinfo.contains(':') { ":***" } else { "" };
                    format!("{scheme}://{user}{hidden}{}", &rest[at..])
                }
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    let Some(query) = query else {
        return base;
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            let secret = ["password", "pass", "passwd", "pwd", "sslpassword"]
                .iter()
                .any(|s| name.eq_ignore_ascii_case(s));
            if secret && pair.contains('=') {
                format!("{name}=***")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: None,
            max_connections: 10,
            min_connections: 0,
            acquire_timeout_ms: 3_000,
            sqlite_busy_timeout_ms: 5_000,
        }
    }
}

impl Config {
    /// The database this configuration selects, or a message saying why the URL is
    /// not understood (the message never repeats the URL, which may hold a password).
    pub fn database_target(&self) -> Result<DatabaseTarget, String> {
        let Some(url) = self.database.url.as_deref().map(str::trim) else {
            return Ok(DatabaseTarget::Sqlite(self.data_dir.join("latchkey.db")));
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseTarget::Postgres(url.to_owned()));
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or(url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() || path == ":memory:" {
                return Err("database.url: give an SQLite file path (sqlite:PATH); in-memory databases lose every account at restart".into());
            }
            return Ok(DatabaseTarget::Sqlite(PathBuf::from(path)));
        }
        Err("database.url: use postgres://..., postgresql://... or sqlite:PATH".into())
    }

    /// The public URL, defaulting to `http://<listen>` (dev only: production
    /// validation requires it to be set).
    pub fn effective_public_url(&self) -> String {
        self.public_url.as_deref().map_or_else(
            || format!("http://{}", self.listen),
            |u| u.trim_end_matches('/').to_owned(),
        )
    }

    /// Whether clients reach us over https (decides HSTS).
    pub fn public_url_is_https(&self) -> bool {
        self.effective_public_url()
            .to_ascii_lowercase()
            .starts_with("https://")
    }

    /// Where signing keys live, with `auto` resolved by the mode.
    pub fn key_storage(&self) -> KeyStorageKind {
        match (self.tokens.key_storage, self.mode) {
            (KeyStorageKind::Auto, Mode::Dev) => KeyStorageKind::Files,
            (KeyStorageKind::Auto, Mode::Production) => KeyStorageKind::Database,
            (explicit, _) => explicit,
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

/// `[webauthn]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebauthnConfig {
    /// Offer passkeys (registration, second factor).
    pub enabled: bool,
    /// Relying-party id: the host of `public_url` (default) or a parent domain
    /// of it. Passkeys are bound to it: changing it orphans every passkey.
    pub rp_id: Option<String>,
}

impl Default for WebauthnConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            rp_id: None,
        }
    }
}

impl Config {
    /// The WebAuthn relying party for this configuration: `Ok(None)` when
    /// disabled, `Err` (why) when `public_url` cannot carry passkeys.
    pub fn passkey_service(
        &self,
    ) -> Result<
        Option<latchkey_core::mfa::passkey::PasskeyService>,
        latchkey_core::mfa::passkey::PasskeySetupError,
    > {
        if !self.webauthn.enabled {
            return Ok(None);
        }
        let public = self.effective_public_url();
        let host = url::Url::parse(&public)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_default();
        let rp_id = self.webauthn.rp_id.clone().unwrap_or(host);
        latchkey_core::mfa::passkey::PasskeyService::new(&public, &rp_id, &self.mail.product_name)
            .map(Some)
    }
}

/// `[redis]` (`Debug` hides a password in the URL)
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://host:port/db`; unset runs everything in-process.
    pub url: Option<String>,
    /// Prefix of every key latchkey writes (several deployments can share a
    /// Redis with different prefixes).
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: None,
            key_prefix: "latchkey:".into(),
        }
    }
}

/// `[http]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest accepted request body; larger gets `413 payload_too_large`.
    pub body_limit_bytes: usize,
    /// A request still running after this gets `503 unavailable`.
    pub request_timeout_ms: u64,
    /// On SIGTERM/SIGINT, in-flight requests get this long to finish.
    pub shutdown_grace_ms: u64,
    /// A TLS handshake or the request headers must arrive within this; a new
    /// connection must have sent its first request's headers within it.
    pub header_read_timeout_ms: u64,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout_ms: u64,
    /// Open connections at most per listener; beyond, new ones are closed at once.
    pub max_connections: usize,
    /// Open connections at most per client address (IPv6: per /64), except
    /// from `trusted_proxies`; beyond, new ones are closed at once.
    pub max_connections_per_ip: usize,
    /// HTTP/2: how often an idle peer is pinged.
    pub h2_keep_alive_interval_ms: u64,
    /// HTTP/2: a ping not answered within this closes the connection.
    pub h2_keep_alive_timeout_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: 64 * 1024,
            request_timeout_ms: 15_000,
            shutdown_grace_ms: 10_000,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 1_000,
            max_connections_per_ip: 100,
            h2_keep_alive_interval_ms: 20_000,
            h2_keep_alive_timeout_ms: 10_000,
        }
    }
}

/// `[cors]`: exact-origin CORS. An origin not listed gets no CORS headers at all.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Exact origins (`https://app.example.com`), or `["*"]` (refused with
    /// credentials). Empty (default): cross-origin browser calls are not allowed.
    pub allowed_origins: Vec<String>,
    /// Methods allowed cross-origin.
    pub allowed_methods: Vec<String>,
    /// Request headers allowed cross-origin.
    pub allowed_headers: Vec<String>,
    /// Whether browsers may send cookies cross-origin.
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight answer.
    pub max_age_seconds: u64,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allowed_methods: ["GET", "POST", "PUT", "PATCH", "DELETE"]
                .map(String::from)
                .to_vec(),
            allowed_headers: [
                "authorization",
                "content-type",
                "x-csrf-token",
                "x-request-id",
                "idempotency-key",
            ]
            .map(String::from)
            .to_vec(),
            allow_credentials: true,
            max_age_seconds: 600,
        }
    }
}

/// `[tls]`: both or neither.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

/// `[metrics]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `GET /metrics` at all.
    pub enabled: bool,
    /// Serve it on this separate address instead of the main listener.
    pub listen: Option<SocketAddr>,
    /// When set, `/metrics` answers only requests with `Authorization: Bearer
    /// <token>` (on whichever listener serves it).
    pub bearer_token: Option<Secret>,
    /// File holding `bearer_token`.
    pub bearer_token_file: Option<PathBuf>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
            bearer_token: None,
            bearer_token_file: None,
        }
    }
}

impl Config {
    /// Whom the server believes about client addresses.
    pub fn proxy_trust(&self) -> crate::client::ProxyTrust<'_> {
        crate::client::ProxyTrust {
            proxies: &self.trusted_proxies,
            header: self.trusted_proxies_header,
        }
    }

    /// Whether the main listener serves `/metrics`: metrics on, no separate
    /// listener, and — in production — a bearer token configured. The metrics
    /// are an oracle (a mail counter moving after a password reset request
    /// tells whether the address has an account), so production never shows
    /// them to anyone who can reach the public listener.
    pub fn metrics_on_main_listener(&self) -> bool {
        self.metrics.enabled
            && self.metrics.listen.is_none()
            && (self.mode != Mode::Production
                || self.metrics.bearer_token.is_some()
                || self.metrics.bearer_token_file.is_some())
    }
}

/// Reads CIDRs, accepting a bare address as a single-host network.
fn deserialize_networks<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<ipnet::IpNet>, D::Error> {
    let raw = Vec::<String>::deserialize(d)?;
    raw.iter()
        .map(|s| {
            let s = s.trim();
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!("{s:?} is not an IP address or CIDR"))
                })
        })
        .collect()
}

#[cfg(test)]
mod debug_tests;
