//! `[events]`: live event streams, the Redis stream of events and alerting;
//! `[webhooks]`: delivery of events to HTTP endpoints.

use serde::{Deserialize, Serialize};

use latchkey_core::webhooks::signing::WebhookSecret;
use latchkey_core::webhooks::target::check_url;
use latchkey_core::webhooks::Subscriptions;

use super::secret::Secret;
use super::{Config, Mode, Problem};

/// `[events]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Live streams (`GET /v1/me/events/stream`) one user may hold open on
    /// one node; one more is `429`.
    pub stream_max_per_user: usize,
    /// Live streams one node holds open in all; one more is `429`.
    pub stream_max_per_node: usize,
    /// Seconds between the comment lines that keep an idle stream open (and
    /// re-check its credential).
    pub stream_heartbeat_seconds: u64,
    /// Events at or above this severity (`info`, `notice`, `warning`,
    /// `critical`) are alerts: logged at `warn` (`error` for critical) and
    /// delivered to the webhooks subscribed to `alert`.
    pub alert_min_severity: String,
    /// A Redis stream key (under `redis.key_prefix`) that every event is
    /// added to, at least once, in commit order; unset: off. Needs `redis.url`.
    pub redis_stream: Option<String>,
    /// Approximate length the Redis stream is trimmed to (`MAXLEN ~`).
    pub redis_stream_maxlen: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            stream_max_per_user: latchkey_core::audit::live::DEFAULT_PER_USER,
            stream_max_per_node: latchkey_core::audit::live::DEFAULT_PER_NODE,
            stream_heartbeat_seconds: 15,
            alert_min_severity: "critical".into(),
            redis_stream: None,
            redis_stream_maxlen: 100_000,
        }
    }
}

/// `[webhooks]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Attempts per delivery before it becomes a dead letter.
    pub max_attempts: u32,
    /// Delay after the first failed attempt; each later one is three times
    /// the last (with ±20 % jitter), up to `retry_max_seconds`.
    pub retry_base_seconds: u64,
    /// Longest delay between two attempts.
    pub retry_max_seconds: u64,
    /// Seconds one attempt may take (connect, send, answer) before it counts
    /// as failed.
    pub timeout_seconds: u64,
    /// Attempts in flight to one endpoint at once, per node.
    pub max_in_flight_per_endpoint: usize,
    /// After a secret rotation, seconds the previous secret still signs (both
    /// signatures are sent meanwhile).
    pub secret_overlap_seconds: u64,
    /// Whether endpoints may be `http://` and resolve to loopback, private or
    /// link-local addresses. Unset: yes in dev, never in production.
    pub allow_private_networks: Option<bool>,
    /// Endpoints defined here rather than through the admin API.
    pub endpoints: Vec<StaticWebhook>,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            retry_base_seconds: 90,
            retry_max_seconds: 12 * 3600,
            timeout_seconds: 10,
            max_in_flight_per_endpoint: 4,
            secret_overlap_seconds: 24 * 3600,
            allow_private_networks: None,
            endpoints: Vec::new(),
        }
    }
}

/// `[[webhooks.endpoints]]`: a webhook kept in line with this file at every
/// start (the admin API lists it and cannot delete it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticWebhook {
    /// A name, unique among the static endpoints (`^[a-z][a-z0-9_-]{0,63}$`):
    /// it keeps the endpoint's id (and its deliveries) across restarts.
    pub name: String,
    /// Where events are POSTed.
    pub url: String,
    /// Event types (docs/events.md), `"*"` for all, `"alert"` for alerts.
    pub events: Vec<String>,
    /// The signing secret, `whsec_` + base64 (also `secret_file`).
    pub secret: Option<Secret>,
    /// A path to a file holding the secret.
    pub secret_file: Option<std::path::PathBuf>,
    /// The secret being rotated out, still signing alongside until removed
    /// from here (optional).
    pub previous_secret: Option<Secret>,
}

/// A static endpoint, checked.
#[derive(Debug)]
pub struct CheckedWebhook {
    /// Its name.
    pub name: String,
    /// Its URL, checked by the SSRF guard.
    pub url: String,
    /// What it receives.
    pub events: Subscriptions,
    /// Its secret.
    pub secret: WebhookSecret,
    /// The secret being rotated out.
    pub previous: Option<WebhookSecret>,
}

/// Whether `name` is a valid static endpoint name.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

impl Config {
    /// Whether webhook endpoints may be plain HTTP on private networks.
    pub fn webhooks_allow_private(&self) -> bool {
        self.webhooks
            .allow_private_networks
            .unwrap_or(self.mode == Mode::Dev)
    }
}

impl Config {
    /// The endpoints of `[[webhooks.endpoints]]`, checked (secrets read from
    /// their files); every problem at once.
    pub fn static_webhooks(&self) -> Result<Vec<CheckedWebhook>, Vec<Problem>> {
        let mut out = Vec::new();
        let mut problems = Vec::new();
        let allow_private = self.webhooks_allow_private();
        for (i, e) in self.webhooks.endpoints.iter().enumerate() {
            let key = |field: &str| format!("webhooks.endpoints[{i}].{field}");
            if !valid_name(&e.name) {
                problems.push(Problem::new(
                    key("name"),
                    "use a lower-case letter, then up to 63 lower-case letters, digits, '_' or '-'",
                ));
            } else if self.webhooks.endpoints[..i]
                .iter()
                .any(|o| o.name == e.name)
            {
                problems.push(Problem::new(key("name"), "is used by another endpoint"));
            }
            let url = check_url(&e.url, allow_private)
                .map_err(|p| problems.push(Problem::new(key("url"), p.to_string())))
                .ok();
            let events = Subscriptions::parse(&e.events)
                .map_err(|p| problems.push(Problem::new(key("events"), p.to_string())))
                .ok();
            let secret = match super::secrets::read_secret(
                &key("secret"),
                e.secret.as_ref(),
                e.secret_file.as_ref(),
            ) {
                Ok(Some(text)) => WebhookSecret::parse(text.expose())
                    .map_err(|p| problems.push(Problem::new(key("secret"), p.to_string())))
                    .ok(),
                Ok(None) => {
                    problems.push(Problem::new(
                        key("secret"),
                        "is required (whsec_ + base64, e.g. `echo whsec_$(openssl rand -base64 32)`)",
                    ));
                    None
                }
                Err(p) => {
                    problems.push(p);
                    None
                }
            };
            let previous = match e
                .previous_secret
                .as_ref()
                .map(|p| WebhookSecret::parse(p.expose()))
            {
                Some(Ok(p)) => Some(Some(p)),
                Some(Err(p)) => {
                    problems.push(Problem::new(key("previous_secret"), p.to_string()));
                    None
                }
                None => Some(None),
            };
            if let (Some(url), Some(events), Some(secret), Some(previous)) =
                (url, events, secret, previous)
            {
                out.push(CheckedWebhook {
                    name: e.name.clone(),
                    url: url.to_string(),
                    events,
                    secret,
                    previous,
                });
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }
}

/// Checks `[events]` and `[webhooks]`.
pub(super) fn check(cfg: &Config, problems: &mut Vec<Problem>) {
    if let Err(mut found) = cfg.static_webhooks() {
        problems.append(&mut found);
    }
    let e = &cfg.events;
    if latchkey_core::audit::Severity::parse(&e.alert_min_severity).is_none() {
        problems.push(Problem::new(
            "events.alert_min_severity",
            "must be one of info, notice, warning, critical",
        ));
    }
    for (key, value) in [
        ("events.stream_max_per_user", e.stream_max_per_user),
        ("events.stream_max_per_node", e.stream_max_per_node),
        (
            "webhooks.max_in_flight_per_endpoint",
            cfg.webhooks.max_in_flight_per_endpoint,
        ),
    ] {
        if value == 0 {
            problems.push(Problem::new(key, "must be at least 1"));
        }
    }
    if e.stream_heartbeat_seconds == 0 || e.stream_heartbeat_seconds > 300 {
        problems.push(Problem::new(
            "events.stream_heartbeat_seconds",
            "must be between 1 and 300",
        ));
    }
    if e.redis_stream.is_some() && cfg.redis.url.is_none() {
        problems.push(Problem::new(
            "events.redis_stream",
            "needs redis.url: the stream is written to that Redis",
        ));
    }
    if matches!(e.redis_stream.as_deref(), Some("")) {
        problems.push(Problem::new("events.redis_stream", "must not be empty"));
    }
    let w = &cfg.webhooks;
    if w.max_attempts == 0 || w.max_attempts > 30 {
        problems.push(Problem::new(
            "webhooks.max_attempts",
            "must be between 1 and 30",
        ));
    }
    if w.retry_base_seconds == 0 || w.retry_base_seconds > w.retry_max_seconds {
        problems.push(Problem::new(
            "webhooks.retry_base_seconds",
            "must be at least 1 and at most webhooks.retry_max_seconds",
        ));
    }
    if w.timeout_seconds == 0 || w.timeout_seconds > 120 {
        problems.push(Problem::new(
            "webhooks.timeout_seconds",
            "must be between 1 and 120",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(cfg: &Config) -> Vec<String> {
        let mut found = Vec::new();
        check(cfg, &mut found);
        found.into_iter().map(|p| p.key).collect()
    }

    fn endpoint(name: &str, url: &str, secret: Option<&str>) -> StaticWebhook {
        StaticWebhook {
            name: name.into(),
            url: url.into(),
            events: vec!["*".into()],
            secret: secret.map(Secret::new),
            secret_file: None,
            previous_secret: None,
        }
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn the_defaults_pass_and_private_networks_are_allowed_in_dev_only() {
        assert!(problems(&Config::default()).is_empty());
        assert!(Config::default().webhooks_allow_private());
        let production = Config {
            mode: Mode::Production,
            ..Config::default()
        };
        assert!(!production.webhooks_allow_private());
    }

    #[test]
    fn bad_settings_are_named() {
        let mut cfg = Config::default();
        cfg.events.alert_min_severity = "loud".into();
        cfg.events.stream_max_per_user = 0;
        cfg.events.stream_heartbeat_seconds = 0;
        cfg.events.redis_stream = Some("events".into());
        cfg.webhooks.max_attempts = 0;
        cfg.webhooks.retry_base_seconds = cfg.webhooks.retry_max_seconds + 1;
        cfg.webhooks.timeout_seconds = 0;
        let found = problems(&cfg);
        for key in [
            "events.alert_min_severity",
            "events.stream_max_per_user",
            "events.stream_heartbeat_seconds",
            "events.redis_stream",
            "webhooks.max_attempts",
            "webhooks.retry_base_seconds",
            "webhooks.timeout_seconds",
        ] {
            assert!(found.iter().any(|k| k == key), "{key} in {found:?}");
        }
    }

    #[test]
    fn static_endpoints_are_checked_each_problem_named_and_secrets_never_echoed() {
        let mut cfg = Config {
            mode: Mode::Production,
            ..Config::default()
        };
        cfg.webhooks.endpoints = vec![
            endpoint("billing", "https://hooks.example.com/a", Some(SECRET)),
            endpoint("billing", "https://10.0.0.1/", Some("whsec_short")),
            endpoint("Bad Name", "http://hooks.example.com/", None),
        ];
        let checked = cfg.static_webhooks().unwrap_err();
        let keys: Vec<&str> = checked.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "webhooks.endpoints[1].name",
                "webhooks.endpoints[1].url",
                "webhooks.endpoints[1].secret",
                "webhooks.endpoints[2].name",
                "webhooks.endpoints[2].url",
                "webhooks.endpoints[2].secret",
            ]
        );
        assert!(checked.iter().all(|p| !p.message.contains("whsec_short")));
        cfg.webhooks.endpoints.truncate(1);
        let ok = cfg.static_webhooks().unwrap();
        assert_eq!(ok[0].name, "billing");
        assert_eq!(
            ok[0].secret.bytes(),
            WebhookSecret::parse(SECRET).unwrap().bytes()
        );
    }
}
