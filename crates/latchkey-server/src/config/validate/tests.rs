use super::*;

fn keys(cfg: &Config) -> Vec<String> {
    cfg.validate().0.into_iter().map(|p| p.key).collect()
}

#[test]
fn the_defaults_are_valid_in_dev() {
    let (problems, warnings) = Config::default().validate();
    assert!(problems.is_empty(), "{problems:?}");
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn connection_caps_and_timeouts_must_be_positive() {
    type Edit = fn(&mut Config);
    let zeroed: [(&str, Edit); 7] = [
        ("http.header_read_timeout_ms", |c| {
            c.http.header_read_timeout_ms = 0;
        }),
        ("http.idle_timeout_ms", |c| c.http.idle_timeout_ms = 0),
        ("http.h2_keep_alive_interval_ms", |c| {
            c.http.h2_keep_alive_interval_ms = 0;
        }),
        ("http.h2_keep_alive_timeout_ms", |c| {
            c.http.h2_keep_alive_timeout_ms = 0;
        }),
        ("http.request_timeout_ms", |c| c.http.request_timeout_ms = 0),
        ("http.max_connections", |c| c.http.max_connections = 0),
        ("http.max_connections", |c| {
            c.http.max_connections_per_ip = 0;
        }),
    ];
    for (key, zero) in zeroed {
        let mut cfg = Config::default();
        zero(&mut cfg);
        assert_eq!(keys(&cfg), [key]);
    }
}

#[test]
fn passkeys_need_a_domain_name() {
    let mut cfg = Config {
        public_url: Some("http://192.0.2.10:8080".into()),
        ..Config::default()
    };
    assert!(cfg
        .validate()
        .1
        .iter()
        .any(|w| w.contains("passkeys are off")));
    assert!(cfg.passkey_service().is_err());
    cfg.public_url = Some("http://localhost:8080".into());
    assert!(cfg.passkey_service().unwrap().is_some());
    cfg.webauthn.rp_id = Some("example.com".into());
    assert!(
        cfg.passkey_service().is_err(),
        "rp_id must be a suffix of the host"
    );
    cfg.public_url = Some("https://auth.example.com".into());
    assert!(
        cfg.passkey_service().unwrap().is_some(),
        "a parent domain is fine"
    );
    cfg.webauthn.enabled = false;
    assert!(cfg.passkey_service().unwrap().is_none());
}

#[test]
fn wildcard_cors_with_credentials_is_refused_even_in_dev() {
    let mut cfg = Config::default();
    cfg.cors.allowed_origins = vec!["*".into()];
    assert_eq!(keys(&cfg), ["cors.allowed_origins"]);
    cfg.cors.allow_credentials = false;
    assert!(
        keys(&cfg).is_empty(),
        "wildcard without credentials is allowed"
    );
}

#[test]
fn origins_must_be_exact() {
    for bad in [
        "https://app.example.com/",
        "https://app.example.com/path",
        "app.example.com",
        "ftp://x.example.com",
        "https://user@x.example.com",
        "",
    ] {
        let mut cfg = Config::default();
        cfg.cors.allowed_origins = vec![bad.into()];
        assert_eq!(keys(&cfg), ["cors.allowed_origins"], "{bad:?}");
    }
    for good in [
        "https://app.example.com",
        "http://localhost:3000",
        "https://[::1]:8443",
    ] {
        let mut cfg = Config::default();
        cfg.cors.allowed_origins = vec![good.into()];
        assert!(keys(&cfg).is_empty(), "{good:?}");
    }
}

#[test]
fn tls_needs_both_files() {
    let mut cfg = Config::default();
    cfg.tls.cert = Some("/nonexistent/cert.pem".into());
    assert_eq!(keys(&cfg), ["tls"]);
    cfg.tls.key = Some("/nonexistent/key.pem".into());
    assert_eq!(keys(&cfg), ["tls.cert", "tls.key"]);
}

#[test]
fn bad_database_urls_are_refused_without_echoing_them() {
    let mut cfg = Config::default();
    cfg.database.url = Some("mysql://root:hunter2@db/latchkey".into());
    let (problems, _) = cfg.validate();
    assert_eq!(problems.len(), 1);
    assert!(!problems[0].to_string().contains("hunter2"));
    cfg.database.url = Some("sqlite::memory:".into());
    assert_eq!(keys(&cfg), ["database.url"]);
    cfg.database.url = Some("postgres://u:p@localhost/db".into());
    assert!(keys(&cfg).is_empty());
    assert_eq!(
        cfg.database_target(),
        Ok(DatabaseTarget::Postgres(
            "postgres://u:p@localhost/db".into()
        ))
    );
}

#[test]
fn pool_bounds_and_limits_are_checked() {
    let mut cfg = Config::default();
    cfg.database.max_connections = 0;
    cfg.database.min_connections = 1;
    cfg.http.body_limit_bytes = 0;
    cfg.log.level = "info,[[[".into();
    let found = keys(&cfg);
    for key in [
        "database.max_connections",
        "database.min_connections",
        "http.body_limit_bytes",
        "log.level",
    ] {
        assert!(found.iter().any(|k| k == key), "{key} not in {found:?}");
    }
}

#[test]
fn password_policy_bounds_are_checked() {
    let mut cfg = Config::default();
    assert!(!keys(&cfg).iter().any(|k| k.starts_with("password.")));
    cfg.password.min_strength = 5;
    cfg.password.history = 25;
    let found = keys(&cfg);
    for key in ["password.min_strength", "password.history"] {
        assert!(found.iter().any(|k| k == key), "{key} not in {found:?}");
    }
}

#[test]
fn a_catch_all_trusted_proxy_is_refused_in_production_and_warned_about_in_dev() {
    for catch_all in [
        "0.0.0.0/0",
        "::/0",
        "0.0.0.0/1",
        "128.0.0.0/1",
        "8000::/1",
        "4.0.0.0/6",
    ] {
        let mut cfg = Config {
            trusted_proxies: vec![catch_all.parse().unwrap(), "10.0.0.0/8".parse().unwrap()],
            ..Config::default()
        };
        let (problems, warnings) = cfg.validate();
        assert!(!problems.iter().any(|p| p.key == "trusted_proxies"));
        assert_eq!(
            warnings
                .iter()
                .filter(|w| w.contains("trusted_proxies"))
                .count(),
            1
        );
        cfg.mode = Mode::Production;
        let (problems, _) = cfg.validate();
        assert!(
            problems.iter().any(|p| p.key == "trusted_proxies"),
            "{catch_all}"
        );
    }
    let cfg = Config {
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap(), "fc00::/7".parse().unwrap()],
        ..Config::default()
    };
    assert!(!cfg
        .validate()
        .1
        .iter()
        .any(|w| w.contains("trusted_proxies")));
}

#[test]
fn an_ipv4_mapped_trusted_proxy_is_warned_about() {
    let cfg = Config {
        trusted_proxies: vec!["::ffff:10.0.0.0/104".parse().unwrap()],
        ..Config::default()
    };
    let (problems, warnings) = cfg.validate();
    assert!(!problems.iter().any(|p| p.key == "trusted_proxies"));
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("IPv4-mapped") && w.contains("::ffff:10.0.0.0/104")),
        "{warnings:?}"
    );
}

#[test]
fn production_serves_metrics_only_privately_or_with_a_token() {
    let mut cfg = Config {
        mode: Mode::Production,
        ..Config::default()
    };
    assert!(!cfg.metrics_on_main_listener());
    let (_, warnings) = cfg.validate();
    assert!(warnings.iter().any(|w| w.contains("metrics.listen")));
    cfg.metrics.bearer_token = Some(crate::config::Secret::new("short"));
    assert!(cfg.metrics_on_main_listener());
    let (problems, warnings) = cfg.validate();
    assert!(!warnings.iter().any(|w| w.contains("metrics.listen")));
    assert!(problems.iter().any(|p| p.key == "metrics.bearer_token"));
    cfg.metrics.bearer_token = None;
    cfg.metrics.listen = Some("127.0.0.1:9090".parse().unwrap());
    assert!(!cfg.metrics_on_main_listener());
    let (_, warnings) = cfg.validate();
    assert!(!warnings.iter().any(|w| w.contains("metrics.listen")));
    let dev = Config::default();
    assert!(dev.metrics_on_main_listener(), "dev keeps today's default");
}
