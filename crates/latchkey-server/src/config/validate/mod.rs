//! Start-up validation: every reason to refuse a configuration, one line each.

use std::path::Path;

use super::{cookies, events, mail, pages, rate_limit, secrets, Config, DatabaseTarget, Mode};

/// One thing wrong with the configuration: which key, and what to do about it.
/// Never contains a secret's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The configuration key (`secrets.master_key`, `public_url`, ...).
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Problem {
    /// A problem with `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

impl Config {
    /// Every problem that should stop `serve`, plus warnings worth logging. Reads
    /// secret files and probes the data directory, but creates nothing except a
    /// short-lived probe file in production.
    pub fn validate(&self) -> (Vec<Problem>, Vec<String>) {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        self.check_public_url(&mut problems);
        self.check_database(&mut problems);
        self.check_cors(&mut problems);
        self.check_tls(&mut problems);
        self.check_limits(&mut problems);
        self.check_auth(&mut problems);
        secrets::check(self, &mut problems, &mut warnings);
        cookies::check(self, &mut problems);
        rate_limit::check(self, &mut problems);
        mail::check(self, &mut problems, &mut warnings);
        pages::check(self, &mut problems, &mut warnings);
        events::check(self, &mut problems);
        if let Err(why) = self.passkey_service() {
            if self.mode == Mode::Production {
                problems.push(Problem::new("webauthn", why.to_string()));
            } else if self.public_url.is_some() {
                // An explicit public URL that cannot carry passkeys deserves a
                // warning; the bare dev default (http://<listen>) silently has none.
                warnings.push(format!(
                    "passkeys are off: {why} (e.g. public_url = \"http://localhost:8080\"; or set webauthn.enabled = false)"
                ));
            }
        }
        if self.auth.enumeration_protection && !self.auth.require_email_verification {
            warnings.push(
                "auth.enumeration_protection cannot hide taken addresses while auth.require_email_verification is off \
                 (new accounts get 201, taken ones 202)"
                    .into(),
            );
        }
        if self.mode == Mode::Production
            && self.metrics.enabled
            && self.metrics.listen.is_none()
            && !self.metrics_on_main_listener()
        {
            warnings.push(
                "GET /metrics is not served: in production set metrics.listen to a private address, \
                 or metrics.bearer_token (or _file) for the main listener"
                    .into(),
            );
        }
        match super::secrets::read_secret(
            "metrics.bearer_token",
            self.metrics.bearer_token.as_ref(),
            self.metrics.bearer_token_file.as_ref(),
        ) {
            Err(p) => problems.push(p),
            Ok(Some(token)) => {
                if let Some(why) = super::secret_weakness(token.expose()) {
                    if self.mode == Mode::Production {
                        problems.push(Problem::new("metrics.bearer_token", why));
                    } else {
                        warnings.push(format!("metrics.bearer_token {why}"));
                    }
                }
            }
            Ok(None) => {}
        }
        for net in self.trusted_proxies.iter().filter(|n| trusts_too_much(n)) {
            let why = format!(
                "{net} trusts a large part of the internet (anything shorter than an IPv4 /8 \
                 or an IPv6 /7): any client in it can then choose its address in {:?} and \
                 every per-IP rule is void; list your proxies' own addresses",
                self.trusted_proxies_header
            );
            if self.mode == Mode::Production {
                problems.push(Problem::new("trusted_proxies", why));
            } else {
                warnings.push(format!("trusted_proxies: {why}"));
            }
        }
        for net in self.trusted_proxies.iter().filter(|n| is_ipv4_mapped(n)) {
            warnings.push(format!(
                "trusted_proxies: {net} is written as IPv4-mapped IPv6 and matches nothing \
                 (client addresses are compared in their IPv4 form); write it as IPv4"
            ));
        }
        if self.keys.publish_ahead_seconds > 86_400 {
            problems.push(Problem::new(
                "keys.publish_ahead_seconds",
                "must be at most 86400 (a day)",
            ));
        } else if self.keys.publish_ahead_seconds < super::JWKS_MAX_AGE_SECONDS {
            warnings.push(format!(
                "keys.publish_ahead_seconds is below the JWKS cache lifetime ({} s): resource servers \
                 may refuse tokens of a rotated key until their cache expires",
                super::JWKS_MAX_AGE_SECONDS
            ));
        }
        (problems, warnings)
    }

    fn check_public_url(&self, problems: &mut Vec<Problem>) {
        let Some(raw) = self.public_url.as_deref() else {
            if self.mode == Mode::Production {
                problems.push(Problem::new(
                    "public_url",
                    "is not set: set it to the https URL clients use, e.g. https://auth.example.com",
                ));
            }
            return;
        };
        match url::Url::parse(raw) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                if self.mode == Mode::Production && url.scheme() != "https" {
                    problems.push(Problem::new(
                        "public_url",
                        "must be https in production (terminate TLS here with [tls] or at a proxy)",
                    ));
                }
                if url.query().is_some() || url.fragment().is_some() {
                    problems.push(Problem::new(
                        "public_url",
                        "must not have a query or fragment",
                    ));
                }
            }
            _ => problems.push(Problem::new(
                "public_url",
                "is not an absolute http(s) URL like https://auth.example.com",
            )),
        }
    }

    fn check_database(&self, problems: &mut Vec<Problem>) {
        match self.database_target() {
            Err(message) => problems.push(Problem::new("database.url", message)),
            Ok(DatabaseTarget::Sqlite(path)) if self.mode == Mode::Production => {
                if let Err(why) = probe_writable(&path) {
                    problems.push(Problem::new(
                        "database.url",
                        format!(
                            "the SQLite database {} is not writable: {why}",
                            path.display()
                        ),
                    ));
                }
            }
            Ok(_) => {}
        }
        if self.database.max_connections == 0 {
            problems.push(Problem::new(
                "database.max_connections",
                "must be at least 1",
            ));
        }
        if self.database.min_connections > self.database.max_connections {
            problems.push(Problem::new(
                "database.min_connections",
                "must not exceed database.max_connections",
            ));
        }
        if let Some(url) = &self.redis.url {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                problems.push(Problem::new(
                    "redis.url",
                    "use redis://host:port or rediss://host:port",
                ));
            }
        }
    }

    fn check_cors(&self, problems: &mut Vec<Problem>) {
        let cors = &self.cors;
        let wildcard = cors.allowed_origins.iter().any(|o| o.trim() == "*");
        if wildcard && cors.allow_credentials {
            problems.push(Problem::new(
                "cors.allowed_origins",
                "\"*\" cannot be combined with cors.allow_credentials = true: list the exact origins",
            ));
        }
        for origin in cors.allowed_origins.iter().filter(|o| o.trim() != "*") {
            if !is_exact_origin(origin) {
                problems.push(Problem::new(
                    "cors.allowed_origins",
                    format!("{origin:?} is not an origin like https://app.example.com (scheme, host, optional port; no path)"),
                ));
            }
        }
        for method in &cors.allowed_methods {
            if axum::http::Method::from_bytes(method.as_bytes()).is_err() {
                problems.push(Problem::new(
                    "cors.allowed_methods",
                    format!("{method:?} is not an HTTP method"),
                ));
            }
        }
        for header in &cors.allowed_headers {
            if axum::http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                problems.push(Problem::new(
                    "cors.allowed_headers",
                    format!("{header:?} is not a header name"),
                ));
            }
        }
    }

    fn check_tls(&self, problems: &mut Vec<Problem>) {
        match (&self.tls.cert, &self.tls.key) {
            (Some(cert), Some(key)) => {
                for (name, path) in [("tls.cert", cert), ("tls.key", key)] {
                    if let Err(e) = std::fs::File::open(path) {
                        problems.push(Problem::new(
                            name,
                            format!("cannot read {}: {}", path.display(), e.kind()),
                        ));
                    }
                }
            }
            (None, None) => {}
            _ => problems.push(Problem::new(
                "tls",
                "set both tls.cert and tls.key, or neither",
            )),
        }
    }

    fn check_limits(&self, problems: &mut Vec<Problem>) {
        if self.http.body_limit_bytes == 0 {
            problems.push(Problem::new(
                "http.body_limit_bytes",
                "must be greater than 0",
            ));
        }
        let http = &self.http;
        for (key, value) in [
            ("http.request_timeout_ms", http.request_timeout_ms),
            ("http.header_read_timeout_ms", http.header_read_timeout_ms),
            ("http.idle_timeout_ms", http.idle_timeout_ms),
            (
                "http.h2_keep_alive_interval_ms",
                http.h2_keep_alive_interval_ms,
            ),
            (
                "http.h2_keep_alive_timeout_ms",
                http.h2_keep_alive_timeout_ms,
            ),
        ] {
            if value == 0 {
                problems.push(Problem::new(key, "must be greater than 0"));
            }
        }
        if http.max_connections == 0 || http.max_connections_per_ip == 0 {
            problems.push(Problem::new(
                "http.max_connections",
                "http.max_connections and http.max_connections_per_ip must be at least 1",
            ));
        }
        if self.metrics.listen == Some(self.listen) && self.listen.port() != 0 {
            problems.push(Problem::new(
                "metrics.listen",
                "must differ from listen (or be unset)",
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            problems.push(Problem::new(
                "log.level",
                "is not a valid filter such as `info` or `latchkey_server=debug,info`",
            ));
        }
    }
}

impl Config {
    fn check_auth(&self, problems: &mut Vec<Problem>) {
        if crate::auth_setup::parse_algorithm(&self.tokens.algorithm).is_none() {
            problems.push(Problem::new(
                "tokens.algorithm",
                "use EdDSA, ES256 or RS256",
            ));
        }
        if self.tokens.access_ttl_seconds == 0 || self.tokens.access_ttl_seconds > 24 * 3600 {
            problems.push(Problem::new(
                "tokens.access_ttl_seconds",
                "must be between 1 and 86400",
            ));
        }
        if self.tokens.cookie_refresh_grace_seconds > 60 {
            problems.push(Problem::new(
                "tokens.cookie_refresh_grace_seconds",
                "must be at most 60 (a spent refresh cookie works that long)",
            ));
        }
        let s = &self.sessions;
        if s.max_per_user == 0 {
            problems.push(Problem::new("sessions.max_per_user", "must be at least 1"));
        }
        if s.idle_timeout_seconds == 0
            || s.absolute_timeout_seconds == 0
            || s.remember_me_timeout_seconds == 0
        {
            problems.push(Problem::new("sessions", "timeouts must be greater than 0"));
        }
        if self.mode == Mode::Production && self.key_storage() == super::KeyStorageKind::Files {
            problems.push(Problem::new(
                "tokens.key_storage",
                "\"files\" keeps private signing keys unencrypted on disk: use \"database\" (sealed with the master key) in production",
            ));
        }
        let mut ids = std::collections::BTreeSet::new();
        for client in &self.introspection.clients {
            let hex_ok = client.secret_sha256.len() == 64
                && client.secret_sha256.bytes().all(|b| b.is_ascii_hexdigit());
            if client.id.is_empty() || client.id.contains(':') || !ids.insert(client.id.as_str()) {
                problems.push(Problem::new(
                    "introspection.clients",
                    "each client needs a unique, non-empty id without ':'",
                ));
            }
            if !hex_ok {
                problems.push(Problem::new(
                    "introspection.clients",
                    format!("client {:?}: secret_sha256 must be 64 hex characters (sha256sum of the secret)", client.id),
                ));
            }
        }
        self.check_password(problems);
        self.check_lockout(problems);
    }

    fn check_lockout(&self, problems: &mut Vec<Problem>) {
        let l = &self.lockout;
        if l.threshold > 0
            && (l.base_seconds == 0
                || l.max_seconds < l.base_seconds
                || l.max_seconds > 30 * 86_400)
        {
            problems.push(Problem::new(
                "lockout.base_seconds",
                "need 0 < base_seconds <= max_seconds <= 2592000 (30 days)",
            ));
        }
    }

    fn check_password(&self, problems: &mut Vec<Problem>) {
        let p = &self.password;
        if p.min_length < 8 || p.min_length > p.max_length || p.max_length > 1024 {
            problems.push(Problem::new(
                "password.min_length",
                "need 8 <= min_length <= max_length <= 1024",
            ));
        }
        if p.min_strength > 4 {
            problems.push(Problem::new(
                "password.min_strength",
                "is a zxcvbn score: 0 (off) to 4",
            ));
        }
        match p.breach_check {
            super::BreachMode::File if p.breach_file.is_none() => problems.push(Problem::new(
                "password.breach_file",
                "is required with password.breach_check = \"file\"",
            )),
            super::BreachMode::Api
                if !(p.breach_api_url.starts_with("https://")
                    || p.breach_api_url.starts_with("http://")) =>
            {
                problems.push(Problem::new(
                    "password.breach_api_url",
                    "must be an http(s) URL",
                ));
            }
            _ => {}
        }
        if !(100..=30_000).contains(&p.breach_timeout_ms) {
            problems.push(Problem::new(
                "password.breach_timeout_ms",
                "must be between 100 and 30000",
            ));
        }
        if p.history > 24 {
            problems.push(Problem::new(
                "password.history",
                "at most 24 (each remembered password costs one hash per change)",
            ));
        }
        if p.argon2_memory_kib < 8 * 1024 || p.argon2_iterations == 0 || p.argon2_parallelism == 0 {
            problems.push(Problem::new(
                "password.argon2_memory_kib",
                "Argon2id needs at least 8192 KiB, 1 iteration and 1 lane",
            ));
        }
    }
}

/// Whether `origin` is `scheme://host[:port]` and nothing else.
fn is_exact_origin(origin: &str) -> bool {
    match url::Url::parse(origin) {
        Ok(url) => {
            matches!(url.scheme(), "http" | "https")
                && url.host().is_some()
                && url.path() == "/"
                && !origin.ends_with('/')
                && url.query().is_none()
                && url.username().is_empty()
        }
        Err(_) => false,
    }
}

/// Checks that the database file (or, when it does not exist yet, its directory)
/// can be written, by creating and removing a probe file.
fn probe_writable(db: &Path) -> Result<(), std::io::ErrorKind> {
    if db.exists() {
        return std::fs::OpenOptions::new()
            .append(true)
            .open(db)
            .map(drop)
            .map_err(|e| e.kind());
    }
    let dir = match db.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| e.kind())?;
    let probe = dir.join(format!(".latchkey-write-probe-{}", std::process::id()));
    std::fs::File::create(&probe).map_err(|e| e.kind())?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// A trusted-proxy range wide enough to take in much of the internet (a
/// catch-all, or halves of it such as `0.0.0.0/1` + `128.0.0.0/1`): shorter
/// than an IPv4 /8 (10.0.0.0/8 is the widest private range) or an IPv6 /7
/// (fc00::/7, unique local addresses).
fn trusts_too_much(net: &ipnet::IpNet) -> bool {
    match net {
        ipnet::IpNet::V4(n) => n.prefix_len() < 8,
        ipnet::IpNet::V6(n) => n.prefix_len() < 7,
    }
}

/// An IPv6 range inside `::ffff:0:0/96`: client addresses are canonicalized
/// to IPv4 before the trust check, so it can never match.
fn is_ipv4_mapped(net: &ipnet::IpNet) -> bool {
    match net {
        ipnet::IpNet::V4(_) => false,
        ipnet::IpNet::V6(n) => n.prefix_len() >= 96 && n.network().to_ipv4_mapped().is_some(),
    }
}

#[cfg(test)]
mod tests;
