//! `[mail]` and `[mail.smtp]`: how outgoing mail leaves the server.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Config, Mode, Problem, Secret};

/// `[mail]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// `file` (dev default): one `.eml` file per message in `<data_dir>/mail/`;
    /// `smtp`: delivered to the server in `[mail.smtp]`.
    pub transport: MailTransport,
    /// `From` header and envelope sender of every message.
    pub from: String,
    /// Product name used in subjects and bodies.
    pub product_name: String,
    /// Verification link with `{token}`; unset: `<public_url>/verify-email?token={token}`
    /// (a page of your application that posts the token to `/v1/email/verify`).
    pub verify_url: Option<String>,
    /// Password-reset link with `{token}`; unset: `<public_url>/reset-password?token={token}`
    /// (a page of your application that posts the token and the new password to
    /// `/v1/password/reset`).
    pub reset_url: Option<String>,
    /// The SMTP server, used when `transport = "smtp"`.
    pub smtp: SmtpConfig,
    /// Retries, giving up, and the circuit breaker of the outbox worker.
    pub outbox: OutboxConfig,
    /// Directory of template files replacing the built-in ones file by file
    /// (`layout.html`, `<name>.txt`, `<name>.html`); unset: built-in templates.
    /// Checked at start: a template that does not parse or uses an unknown
    /// variable stops the server.
    pub templates_dir: Option<PathBuf>,
    /// `[mail.notifications]`: which security notices are mailed (each on by
    /// default; the mails a flow needs are always sent).
    pub notifications: latchkey_core::mail::Notifications,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            transport: MailTransport::File,
            from: "latchkey <no-reply@localhost>".into(),
            product_name: "latchkey".into(),
            verify_url: None,
            reset_url: None,
            smtp: SmtpConfig::default(),
            outbox: OutboxConfig::default(),
            templates_dir: None,
            notifications: latchkey_core::mail::Notifications::default(),
        }
    }
}

/// `[mail.outbox]`: how queued mail is retried. A message is claimed by one node
/// for a lease of twelve times `mail.smtp.timeout_seconds` (three send deadlines;
/// 2 minutes by default), derived so that a send can never outlive its claim.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Seconds before the first retry after a temporary failure (10); the delay
    /// doubles with each further failure. 1–3600.
    pub retry_base_seconds: u32,
    /// Ceiling of the delay between retries in seconds (3600). At least
    /// `retry_base_seconds`, at most 86400.
    pub retry_max_seconds: u32,
    /// Attempts before a message that keeps failing temporarily is given up
    /// (12: about three and a half hours with the defaults). 1–100.
    pub max_attempts: u32,
    /// Consecutive temporary failures (no connection, timeout, TLS failure, 4xx)
    /// that open the circuit breaker (5); 0 turns the breaker off. At most 1000.
    pub breaker_failures: u32,
    /// Seconds the open breaker keeps this node from connecting (30) before one
    /// probe message is tried. 1–3600.
    pub breaker_cooldown_seconds: u32,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            retry_base_seconds: 10,
            retry_max_seconds: 3600,
            max_attempts: 12,
            breaker_failures: 5,
            breaker_cooldown_seconds: 30,
        }
    }
}

/// Where mail goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// Files in `<data_dir>/mail/` (nothing is delivered).
    File,
    /// An SMTP server.
    Smtp,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// `STARTTLS` required (never falls back to plain text); port 587 by default.
    Starttls,
    /// TLS from the first byte ("SMTPS"); port 465 by default.
    Tls,
    /// Plain text; port 25 by default. Development, or a relay on this machine.
    None,
}

/// `[mail.smtp]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// Server host name; the TLS certificate must be valid for it.
    pub host: String,
    /// Server port; unset: 587 (`starttls`), 465 (`tls`) or 25 (`none`).
    pub port: Option<u16>,
    /// `starttls` (default), `tls` or `none`.
    pub tls: SmtpTls,
    /// User name for SMTP authentication (`AUTH PLAIN`/`LOGIN`); unset: none.
    pub username: Option<String>,
    /// Password for `username`.
    pub password: Option<Secret>,
    /// File holding the password (instead of `password`).
    pub password_file: Option<PathBuf>,
    /// PEM file of CA certificates trusted in addition to the public roots (a
    /// private relay's CA).
    pub ca_file: Option<PathBuf>,
    /// Limit in seconds on connecting and on each server reply; a whole message
    /// gets four times this before it counts as a temporary failure.
    pub timeout_seconds: u64,
    /// Name announced with `EHLO`; unset: the host of `public_url`.
    pub hello_name: Option<String>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: None,
            tls: SmtpTls::Starttls,
            username: None,
            password: None,
            password_file: None,
            ca_file: None,
            timeout_seconds: 10,
            hello_name: None,
        }
    }
}

impl SmtpConfig {
    /// The configured port, or the usual one for the TLS mode.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        })
    }

    /// Whether `host` names this machine (plain text never leaves it).
    pub fn host_is_loopback(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// The longest one message may take (four times `timeout_seconds`); a send
    /// still running then counts as a temporary failure.
    pub fn send_deadline(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout_seconds.saturating_mul(4))
    }

    /// The password from `password` or `password_file`, if either is set.
    pub fn resolve_password(&self) -> Result<Option<Secret>, Problem> {
        super::secrets::read_secret(
            "mail.smtp.password",
            self.password.as_ref(),
            self.password_file.as_ref(),
        )
    }
}

/// Keys whose environment values stay text even when they look like numbers.
pub(super) const TEXT_KEYS: [&str; 2] = ["mail.smtp.password", "mail.smtp.username"];

/// Refuses mail settings that cannot work or would leak credentials or mail.
pub(super) fn check(cfg: &Config, problems: &mut Vec<Problem>, warnings: &mut Vec<String>) {
    let mail = &cfg.mail;
    if let Err(e) = latchkey_adapters::mail_message::Sender::parse(&mail.from) {
        problems.push(Problem::new("mail.from", e.to_string()));
    }
    if let Some(dir) = &mail.templates_dir {
        if let Err(e) = latchkey_core::mail::templates::MailTemplates::load(Some(dir)) {
            problems.push(Problem::new("mail.templates_dir", e.to_string()));
        }
    }
    for (key, url) in [
        ("mail.verify_url", &mail.verify_url),
        ("mail.reset_url", &mail.reset_url),
    ] {
        if let Some(url) = url {
            if !url.contains("{token}")
                || !(url.starts_with("https://") || url.starts_with("http://"))
            {
                problems.push(Problem::new(
                    key,
                    "must be an http(s) URL containing {token}",
                ));
            }
        }
    }
    check_outbox(&mail.outbox, problems);
    match mail.transport {
        MailTransport::File if cfg.mode == Mode::Production => warnings.push(
            "mail.transport = \"file\": mail is written to the data directory, not delivered"
                .into(),
        ),
        MailTransport::File => {}
        MailTransport::Smtp => check_smtp(cfg, problems),
    }
}

fn check_outbox(outbox: &OutboxConfig, problems: &mut Vec<Problem>) {
    let mut range = |key: &str, value: u32, min: u32, max: u32| {
        if value < min || value > max {
            problems.push(Problem::new(
                key,
                format!("must be between {min} and {max}"),
            ));
        }
    };
    range(
        "mail.outbox.retry_base_seconds",
        outbox.retry_base_seconds,
        1,
        3600,
    );
    range(
        "mail.outbox.retry_max_seconds",
        outbox.retry_max_seconds,
        outbox.retry_base_seconds.max(1),
        86_400,
    );
    range("mail.outbox.max_attempts", outbox.max_attempts, 1, 100);
    range(
        "mail.outbox.breaker_failures",
        outbox.breaker_failures,
        0,
        1000,
    );
    range(
        "mail.outbox.breaker_cooldown_seconds",
        outbox.breaker_cooldown_seconds,
        1,
        3600,
    );
}

fn check_smtp(cfg: &Config, problems: &mut Vec<Problem>) {
    let smtp = &cfg.mail.smtp;
    let host_ok = !smtp.host.is_empty()
        && smtp.host.len() <= 253
        && smtp
            .host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    if !host_ok {
        problems.push(Problem::new(
            "mail.smtp.host",
            "must be the SMTP server's host name or IP address",
        ));
    }
    if smtp.port == Some(0) {
        problems.push(Problem::new(
            "mail.smtp.port",
            "must be between 1 and 65535",
        ));
    }
    if smtp.timeout_seconds == 0 || smtp.timeout_seconds > 300 {
        problems.push(Problem::new(
            "mail.smtp.timeout_seconds",
            "must be between 1 and 300",
        ));
    }
    if let Some(name) = &smtp.hello_name {
        if name.is_empty()
            || name.len() > 253
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        {
            problems.push(Problem::new(
                "mail.smtp.hello_name",
                "must be a domain name (letters, digits, '-' and '.')",
            ));
        }
    }
    let password = match smtp.resolve_password() {
        Ok(p) => p,
        Err(problem) => {
            problems.push(problem);
            None
        }
    };
    let has_user = smtp.username.as_deref().is_some_and(|u| !u.is_empty());
    if has_user != password.is_some() {
        problems.push(Problem::new(
            "mail.smtp.username",
            "set both mail.smtp.username and mail.smtp.password (or _file), or neither",
        ));
    }
    if smtp.tls == SmtpTls::None {
        if has_user || password.is_some() {
            problems.push(Problem::new(
                "mail.smtp.tls",
                "\"none\" would send the SMTP password in clear text: use \"starttls\" or \"tls\"",
            ));
        }
        if cfg.mode == Mode::Production && !smtp.host_is_loopback() {
            problems.push(Problem::new(
                "mail.smtp.tls",
                "\"none\" sends mail (with one-time links) unencrypted: in production it is only \
                 allowed to a relay on this machine (localhost)",
            ));
        }
        if smtp.ca_file.is_some() {
            problems.push(Problem::new(
                "mail.smtp.ca_file",
                "has no effect with mail.smtp.tls = \"none\"",
            ));
        }
    }
    if let Some(path) = &smtp.ca_file {
        match std::fs::read(path) {
            Ok(pem) if pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") => {}
            Ok(_) => problems.push(Problem::new(
                "mail.smtp.ca_file",
                format!("{} holds no PEM certificate", path.display()),
            )),
            Err(e) => problems.push(Problem::new(
                "mail.smtp.ca_file",
                format!("cannot read {}: {}", path.display(), e.kind()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{MailTransport, SmtpTls};
    use crate::config::{Config, Mode, Secret};

    fn smtp() -> Config {
        let mut cfg = Config::default();
        cfg.mail.transport = MailTransport::Smtp;
        cfg.mail.smtp.host = "smtp.example.com".into();
        cfg
    }

    fn problems(cfg: &Config) -> Vec<String> {
        cfg.validate()
            .0
            .into_iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn a_plain_starttls_server_is_valid_and_ports_default_by_mode() {
        let mut cfg = smtp();
        assert!(problems(&cfg).is_empty(), "{:?}", problems(&cfg));
        assert_eq!(cfg.mail.smtp.effective_port(), 587);
        cfg.mail.smtp.tls = SmtpTls::Tls;
        assert_eq!(cfg.mail.smtp.effective_port(), 465);
        cfg.mail.smtp.tls = SmtpTls::None;
        assert_eq!(cfg.mail.smtp.effective_port(), 25);
        cfg.mail.smtp.port = Some(2525);
        assert_eq!(cfg.mail.smtp.effective_port(), 2525);
    }

    #[test]
    fn smtp_needs_a_host_and_sane_bounds() {
        let mut cfg = smtp();
        cfg.mail.smtp.host = String::new();
        cfg.mail.smtp.port = Some(0);
        cfg.mail.smtp.timeout_seconds = 0;
        cfg.mail.smtp.hello_name = Some("bad name\r\n".into());
        let found = problems(&cfg).join("\n");
        for key in [
            "mail.smtp.host",
            "mail.smtp.port",
            "mail.smtp.timeout_seconds",
            "mail.smtp.hello_name",
        ] {
            assert!(found.contains(key), "{key} missing in {found}");
        }
    }

    #[test]
    fn credentials_come_in_pairs_and_never_over_plain_text() {
        let mut cfg = smtp();
        cfg.mail.smtp.username = Some("latchkey".into());
        assert!(problems(&cfg)[0].starts_with("mail.smtp.username"));
        cfg.mail.smtp.password = Some(Secret::new("s3cret-smtp-password"));
        assert!(problems(&cfg).is_empty(), "{:?}", problems(&cfg));
        cfg.mail.smtp.tls = SmtpTls::None;
        let found = problems(&cfg).join("\n");
        assert!(found.contains("clear text"), "{found}");
        assert!(!found.contains("s3cret"), "a problem echoed the password");
    }

    #[test]
    fn password_file_is_read_and_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("smtp-password");
        std::fs::write(&path, "from-a-file\n").unwrap();
        let mut cfg = smtp();
        cfg.mail.smtp.username = Some("latchkey".into());
        cfg.mail.smtp.password_file = Some(path.clone());
        assert!(problems(&cfg).is_empty(), "{:?}", problems(&cfg));
        assert_eq!(
            cfg.mail.smtp.resolve_password().unwrap().unwrap().expose(),
            "from-a-file"
        );
        cfg.mail.smtp.password = Some(Secret::new("inline"));
        assert!(problems(&cfg).iter().any(|p| p.contains("not both")));
        cfg.mail.smtp.password = None;
        cfg.mail.smtp.password_file = Some(dir.path().join("missing"));
        assert!(problems(&cfg)
            .iter()
            .any(|p| p.starts_with("mail.smtp.password_file")));
    }

    #[test]
    fn plain_text_smtp_in_production_only_to_this_machine() {
        let mut cfg = smtp();
        cfg.mail.smtp.tls = SmtpTls::None;
        assert!(problems(&cfg).is_empty(), "dev allows plain text anywhere");
        cfg.mode = Mode::Production;
        let offending = |cfg: &Config| cfg.validate().0.iter().any(|p| p.key == "mail.smtp.tls");
        assert!(offending(&cfg));
        for local in ["localhost", "127.0.0.1", "[::1]", "::1"] {
            cfg.mail.smtp.host = local.into();
            assert!(!offending(&cfg), "{local} is this machine");
        }
    }

    #[test]
    fn ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = smtp();
        cfg.mail.smtp.ca_file = Some(dir.path().join("missing.pem"));
        assert!(problems(&cfg)[0].starts_with("mail.smtp.ca_file: cannot read"));
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        cfg.mail.smtp.ca_file = Some(not_pem);
        assert!(problems(&cfg)[0].contains("no PEM certificate"));
    }

    #[test]
    fn outbox_settings_are_bounded() {
        let mut cfg = Config::default();
        assert!(problems(&cfg).is_empty(), "{:?}", problems(&cfg));
        cfg.mail.outbox.retry_base_seconds = 0;
        cfg.mail.outbox.max_attempts = 0;
        cfg.mail.outbox.breaker_cooldown_seconds = 0;
        cfg.mail.outbox.breaker_failures = 5000;
        let found = problems(&cfg).join("\n");
        for key in [
            "mail.outbox.retry_base_seconds",
            "mail.outbox.max_attempts",
            "mail.outbox.breaker_cooldown_seconds",
            "mail.outbox.breaker_failures",
        ] {
            assert!(found.contains(key), "{key} missing in {found}");
        }
        let mut cfg = Config::default();
        cfg.mail.outbox.retry_base_seconds = 600;
        cfg.mail.outbox.retry_max_seconds = 60;
        assert!(problems(&cfg)[0].starts_with("mail.outbox.retry_max_seconds"));
        cfg.mail.outbox.retry_max_seconds = 600;
        cfg.mail.outbox.breaker_failures = 0;
        assert!(problems(&cfg).is_empty(), "0 turns the breaker off");
    }

    #[test]
    fn the_claim_always_outlasts_a_send() {
        // Every accepted timeout: the lease leaves a whole deadline of margin after
        // the latest moment a send may start (see mail_worker::Worker::round).
        for timeout in [1, 10, 300] {
            let mut cfg = smtp();
            cfg.mail.smtp.timeout_seconds = timeout;
            assert!(problems(&cfg).is_empty());
            let settings = crate::mail_worker::OutboxSettings::from_config(&cfg.mail);
            let deadline = time::Duration::try_from(settings.send_deadline).unwrap();
            assert_eq!(
                deadline,
                time::Duration::seconds(4 * i64::try_from(timeout).unwrap())
            );
            assert!(settings.lease() >= deadline * 3);
        }
        assert_eq!(
            crate::mail_worker::OutboxSettings::default().lease(),
            time::Duration::minutes(2)
        );
    }

    #[test]
    fn from_must_be_a_mailbox_and_file_transport_warns_in_production() {
        let mut cfg = Config::default();
        cfg.mail.from = "not an address".into();
        assert!(problems(&cfg)[0].starts_with("mail.from"));
        let cfg = Config {
            mode: Mode::Production,
            ..Config::default()
        };
        assert!(cfg
            .validate()
            .1
            .iter()
            .any(|w| w.contains("mail.transport = \"file\"")));
    }
}
