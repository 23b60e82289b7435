//! The start-up summary `latchkey serve` logs once: what this server runs with,
//! in a few lines — never a secret's value, never a password in a URL.

use std::net::SocketAddr;
use std::path::Path;

use crate::config::{
    without_password, BreachMode, Config, DatabaseTarget, MailTransport, Mode, SecretOrigin,
    SecretOrigins, SmtpTls,
};

/// What the summary needs beyond the configuration: facts of this start.
#[derive(Debug, Clone)]
pub struct StartFacts {
    /// Where each secret came from.
    pub secrets: SecretOrigins,
    /// The separate metrics listener, when one was bound.
    pub metrics_addr: Option<SocketAddr>,
    /// Whether `/metrics` is served at all (the recorder may be unavailable).
    pub metrics_served: bool,
}

/// The summary lines, in order: mode, data directory, database, public URL,
/// secrets, mail, breach check, passkeys, pages, metrics, Redis.
pub fn lines(config: &Config, facts: &StartFacts) -> Vec<String> {
    let dir = config.data_dir.display();
    vec![
        format!(
            "mode: {}",
            match config.mode {
                Mode::Dev => "dev (missing secrets are generated; not for production)",
                Mode::Production => "production",
            }
        ),
        format!("data directory: {dir}"),
        format!("database: {}", database(config)),
        format!("public URL: {}", config.effective_public_url()),
        format!("secrets: {}", secrets(config, &facts.secrets)),
        format!("mail: {}", mail(config)),
        format!("breached-password check: {}", breach(config)),
        format!("passkeys: {}", passkeys(config)),
        format!("pages: {}", pages(config)),
        format!("metrics: {}", metrics(config, facts)),
        format!("redis: {}", redis(config)),
    ]
}

fn database(config: &Config) -> String {
    match config.database_target() {
        Ok(DatabaseTarget::Sqlite(path)) => format!("sqlite, {}", path.display()),
        Ok(DatabaseTarget::Postgres(url)) => format!("postgres, {}", without_password(&url)),
        Err(why) => why,
    }
}

fn secrets(config: &Config, origins: &[(&'static str, SecretOrigin)]) -> String {
    let dir = config.data_dir.join("secrets");
    let names = |wanted: SecretOrigin| -> Vec<&str> {
        origins
            .iter()
            .filter(|(_, o)| *o == wanted)
            .map(|(n, _)| *n)
            .collect()
    };
    let mut parts = Vec::new();
    for (origin, what) in [
        (SecretOrigin::Configured, "configured".to_owned()),
        (
            SecretOrigin::GeneratedNow,
            format!("generated now into {}", dir.display()),
        ),
        (
            SecretOrigin::KeptFromEarlierStart,
            format!("kept in {} (generated on an earlier start)", dir.display()),
        ),
    ] {
        let names = names(origin);
        if !names.is_empty() {
            parts.push(format!("{} {what}", names.join(", ")));
        }
    }
    parts.join("; ")
}

fn mail(config: &Config) -> String {
    let mail = &config.mail;
    match mail.transport {
        MailTransport::File => format!(
            "file transport: .eml files in {} (nothing is delivered)",
            Path::new(&config.data_dir).join("mail").display()
        ),
        MailTransport::Smtp => {
            let smtp = &mail.smtp;
            let tls = match smtp.tls {
                SmtpTls::Starttls => "STARTTLS required",
                SmtpTls::Tls => "TLS",
                SmtpTls::None => "plain text",
            };
            let auth = if smtp.username.is_some() {
                ", authenticated"
            } else {
                ""
            };
            format!(
                "smtp to {}:{} ({tls}{auth}), from {}",
                smtp.host,
                smtp.effective_port(),
                mail.from
            )
        }
    }
}

fn breach(config: &Config) -> String {
    let p = &config.password;
    match p.breach_check {
        BreachMode::Off => "off".into(),
        BreachMode::File => format!(
            "offline corpus {}",
            p.breach_file
                .as_deref()
                .map_or_else(|| "(unset)".into(), |f| f.display().to_string())
        ),
        BreachMode::Api => {
            let host = url::Url::parse(&p.breach_api_url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| p.breach_api_url.clone());
            let failing = if p.breach_fail_open {
                "accepts the password"
            } else {
                "refuses with 503"
            };
            format!(
                "range API, outbound HTTPS to {host} (5 hex characters of each password's SHA-1 leave; \
                 when it cannot answer, the check {failing})"
            )
        }
    }
}

fn passkeys(config: &Config) -> String {
    if !config.webauthn.enabled {
        return "off (webauthn.enabled = false)".into();
    }
    match config.passkey_service() {
        Ok(Some(_)) => {
            let rp = config.webauthn.rp_id.clone().unwrap_or_else(|| {
                url::Url::parse(&config.effective_public_url())
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_default()
            });
            format!("on (relying party {rp})")
        }
        Ok(None) => "off".into(),
        Err(why) => format!("off: {why}"),
    }
}

fn pages(config: &Config) -> String {
    if config.pages_enabled() {
        format!(
            "{}{} and {}{} served (pages.enabled)",
            config.effective_public_url(),
            crate::config::VERIFY_PAGE,
            config.effective_public_url(),
            crate::config::RESET_PAGE
        )
    } else {
        "off (mail links go to mail.verify_url and mail.reset_url)".into()
    }
}

fn metrics(config: &Config, facts: &StartFacts) -> String {
    if !config.metrics.enabled {
        return "off (metrics.enabled = false)".into();
    }
    if !facts.metrics_served {
        return "off (no metrics recorder could be installed)".into();
    }
    match facts.metrics_addr {
        Some(addr) => format!("http://{addr}/metrics (separate listener)"),
        None => "/metrics on the main listener".into(),
    }
}

fn redis(config: &Config) -> String {
    match &config.redis.url {
        Some(url) => format!(
            "{} (shared rate limits, cache drops to every node)",
            without_password(url)
        ),
        None => "not configured (rate limits and caches in this process only)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> StartFacts {
        StartFacts {
            secrets: vec![
                ("master_key", SecretOrigin::GeneratedNow),
                ("hmac_key", SecretOrigin::KeptFromEarlierStart),
            ],
            metrics_addr: None,
            metrics_served: true,
        }
    }

    #[test]
    fn the_dev_defaults_in_eleven_lines() {
        let lines = lines(&Config::default(), &facts());
        assert_eq!(lines.len(), 11);
        let text = lines.join("\n");
        for needle in [
            "mode: dev",
            "data directory: ./latchkey-data",
            "database: sqlite, ./latchkey-data/latchkey.db",
            "public URL: http://127.0.0.1:8080",
            "master_key generated now into ./latchkey-data/secrets",
            "hmac_key kept in ./latchkey-data/secrets",
            "mail: file transport",
            "outbound HTTPS to api.pwnedpasswords.com",
            "passkeys: off: passkeys need a domain name",
            "pages: http://127.0.0.1:8080/verify-email and",
            "metrics: /metrics on the main listener",
            "redis: not configured",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
    }

    #[test]
    fn passwords_in_urls_and_secrets_never_show() {
        let mut config = Config {
            mode: Mode::Production,
            public_url: Some("https://auth.example.com".into()),
            ..Config::default()
        };
        config.database.url = Some("postgres://lk:db-pass-123@db.internal/lk".into());
        config.redis.url = Some("redis://:redis-pass-456@cache:6379".into());
        config.secrets.master_key = Some(crate::config::Secret::new("master-value-789"));
        config.mail.transport = MailTransport::Smtp;
        config.mail.smtp.host = "smtp.example.com".into();
        config.mail.smtp.username = Some("mailer".into());
        config.mail.smtp.password = Some(crate::config::Secret::new("smtp-pass-000"));
        config.webauthn.enabled = false;
        let mut facts = facts();
        facts.secrets = vec![
            ("master_key", SecretOrigin::Configured),
            ("hmac_key", SecretOrigin::Configured),
        ];
        facts.metrics_addr = Some("127.0.0.1:9090".parse().unwrap());
        let text = lines(&config, &facts).join("\n");
        for secret in [
            "db-pass-123",
            "redis-pass-456",
            "master-value-789",
            "smtp-pass-000",
        ] {
            assert!(!text.contains(secret), "{secret} leaked:\n{text}");
        }
        for needle in [
            "mode: production",
            "postgres, postgres://lk:***@db.internal/lk",
            "redis: redis://:***@cache:6379",
            "secrets: master_key, hmac_key configured",
            "smtp to smtp.example.com:587 (STARTTLS required, authenticated)",
            "passkeys: off (webauthn.enabled = false)",
            "pages: off",
            "metrics: http://127.0.0.1:9090/metrics (separate listener)",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
    }
}
