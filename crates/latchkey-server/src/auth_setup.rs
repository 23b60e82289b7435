//! Builds the sign-in service from configuration: password hasher, signing keys,
//! token settings and session policy.

use std::sync::Arc;

use latchkey_core::auth::{
    BreachCheck, Dependencies, LockoutPolicy, MfaServices, Services, SessionPolicy,
};
use latchkey_core::clock::Clock;
use latchkey_core::password::{Argon2Params, PasswordHasher};
use latchkey_core::ports::Store;
use latchkey_core::token::{Algorithm, TokenSettings};
use time::Duration;

use crate::config::{BreachMode, Config, KeyStorageKind, ResolvedSecrets};
use crate::keys;
use crate::startup::StartupError;

/// Verification leeway for `exp`/`nbf` (the most the issue allows).
pub const LEEWAY: Duration = Duration::seconds(60);

/// The algorithm named in `tokens.algorithm` (case-insensitive; see
/// `Algorithm::from_str`).
pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    name.parse().ok()
}

fn seconds(n: u64) -> Duration {
    Duration::seconds(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Token settings: issuer (default: the public URL), audience, lifetime, leeway.
pub fn token_settings(config: &Config) -> TokenSettings {
    TokenSettings {
        issuer: config
            .tokens
            .issuer
            .clone()
            .unwrap_or_else(|| config.effective_public_url()),
        audience: config.tokens.audience.clone(),
        ttl: seconds(config.tokens.access_ttl_seconds),
        leeway: LEEWAY,
    }
}

/// Where the signing keys live for this configuration (`tokens.key_storage`).
pub fn key_storage(
    config: &Config,
    store: &Arc<dyn Store>,
    secrets: &ResolvedSecrets,
) -> keys::KeyStorage {
    match config.key_storage() {
        KeyStorageKind::Database => keys::KeyStorage::Database {
            store: Arc::clone(store),
            seal: Arc::new(secrets.keyring(keys::SEAL_PURPOSE)),
        },
        KeyStorageKind::Files | KeyStorageKind::Auto => {
            keys::KeyStorage::Files(keys::key_dir(&config.data_dir))
        }
    }
}

/// When a key rotated at `now` starts signing: after `keys.publish_ahead_seconds`,
/// or at once when `at_once` (an emergency rotation).
pub fn activation(
    config: &Config,
    now: time::OffsetDateTime,
    at_once: bool,
) -> time::OffsetDateTime {
    if at_once {
        now
    } else {
        now + publish_ahead(config)
    }
}

/// How long a new key is published before it signs (`keys.publish_ahead_seconds`).
pub fn publish_ahead(config: &Config) -> Duration {
    seconds(config.keys.publish_ahead_seconds)
}

/// How long a superseded key stays in the ring: until every token it signed
/// has expired.
pub fn key_retirement(config: &Config) -> Duration {
    token_settings(config).ttl + LEEWAY
}

/// The password rules of `[password]`.
pub fn password_policy(config: &Config) -> latchkey_core::password::PasswordPolicy {
    let p = &config.password;
    latchkey_core::password::PasswordPolicy {
        min_length: p.min_length,
        max_length: p.max_length,
        min_strength: p.min_strength,
        require_lowercase: p.require_lowercase,
        require_uppercase: p.require_uppercase,
        require_digit: p.require_digit,
        require_symbol: p.require_symbol,
        history: p.history,
        breach_check: p.breach_check != BreachMode::Off,
    }
}

/// The breached-password check of `[password]` (`None` when off). An offline
/// corpus is loaded here, once, so a bad file stops the start.
pub fn breach_check(config: &Config) -> Result<Option<BreachCheck>, StartupError> {
    let p = &config.password;
    let checker: Arc<dyn latchkey_core::password::BreachChecker> = match p.breach_check {
        BreachMode::Off => return Ok(None),
        BreachMode::Api => Arc::new(
            latchkey_adapters::breach_api::RangeApiChecker::new(
                &p.breach_api_url,
                std::time::Duration::from_millis(p.breach_timeout_ms),
            )
            .map_err(|why| config_problem("password.breach_api_url", why.to_string()))?,
        ),
        BreachMode::File => {
            let path = p.breach_file.clone().unwrap_or_default();
            let file = std::fs::File::open(&path).map_err(|e| {
                config_problem(
                    "password.breach_file",
                    format!("cannot open {}: {}", path.display(), e.kind()),
                )
            })?;
            let list = latchkey_core::password::BreachList::load(std::io::BufReader::new(file))
                .map_err(|e| config_problem("password.breach_file", e.to_string()))?;
            tracing::info!(hashes = list.len(), "breached-password corpus loaded");
            Arc::new(list)
        }
    };
    Ok(Some(BreachCheck {
        checker,
        fail_open: p.breach_fail_open,
    }))
}

fn config_problem(key: &str, message: impl Into<String>) -> StartupError {
    StartupError::Config(vec![crate::config::Problem::new(key, message)])
}

/// The login lockout of `[lockout]`, keyed by the server's HMAC key.
pub fn lockout_policy(config: &Config, secrets: &ResolvedSecrets) -> LockoutPolicy {
    LockoutPolicy {
        threshold: config.lockout.threshold,
        base: seconds(config.lockout.base_seconds),
        cap: seconds(config.lockout.max_seconds),
        key: zeroize::Zeroizing::new(secrets.hmac_key.expose().as_bytes().to_vec()),
    }
}

/// How long past the request timeout an unfinished keyed run still holds its
/// key (room for the clocks of two nodes to differ).
const ABANDON_MARGIN: Duration = Duration::seconds(5);

/// `Idempotency-Key` records of this deployment: answers sealed under the
/// master key, record keys under the HMAC key (every node computes the same),
/// a run unfinished past the request timeout (plus [`ABANDON_MARGIN`])
/// counted as abandoned: the timeout ends every request before that.
pub fn idempotency(
    config: &Config,
    store: &Arc<dyn Store>,
    secrets: &ResolvedSecrets,
    clock: &Arc<dyn Clock>,
) -> Arc<latchkey_core::idempotency::Idempotency> {
    let timeout = Duration::milliseconds(
        i64::try_from(config.http.request_timeout_ms).unwrap_or(i64::MAX / 2),
    );
    Arc::new(latchkey_core::idempotency::Idempotency::new(
        Arc::clone(store) as Arc<dyn latchkey_core::ports::IdempotencyStore>,
        secrets.keyring(latchkey_core::idempotency::SEAL_PURPOSE),
        secrets.hmac_key.expose().as_bytes(),
        Arc::clone(clock),
        timeout.saturating_add(ABANDON_MARGIN),
    ))
}

/// The listing cursors of this deployment, keyed by the HMAC secret (every
/// node makes and accepts the same cursors).
pub fn cursors(secrets: &ResolvedSecrets) -> latchkey_core::page::Cursors {
    latchkey_core::page::Cursors::new(secrets.hmac_key.expose().as_bytes())
}

/// The services for the operator CLI: the same as a server's, on the wall
/// clock, without any of the server's loops (mail queued by a command is
/// sent by a running server, or the next one to start).
pub async fn operator_services(
    config: &Config,
    store: Arc<dyn Store>,
    secrets: &ResolvedSecrets,
) -> Result<Services, StartupError> {
    build(
        config,
        store,
        secrets,
        Arc::new(latchkey_core::clock::SystemClock),
    )
    .await
}

/// The sign-in services for a validated configuration.
pub async fn build(
    config: &Config,
    store: Arc<dyn Store>,
    secrets: &ResolvedSecrets,
    clock: Arc<dyn Clock>,
) -> Result<Services, StartupError> {
    let p = &config.password;
    let hasher = PasswordHasher::new(
        Argon2Params {
            memory_kib: p.argon2_memory_kib,
            iterations: p.argon2_iterations,
            parallelism: p.argon2_parallelism,
        },
        p.max_concurrent_hashes,
    )
    .map_err(StartupError::Hashing)?;
    let alg = parse_algorithm(&config.tokens.algorithm).ok_or(StartupError::Algorithm)?;
    let tokens = token_settings(config);
    let ring = key_storage(config, &store, secrets)
        .load_or_create(alg, clock.now(), key_retirement(config))
        .await
        .map_err(StartupError::Keys)?;
    let s = &config.sessions;
    let policy = SessionPolicy {
        idle_timeout: seconds(s.idle_timeout_seconds),
        absolute_timeout: seconds(s.absolute_timeout_seconds),
        remember_me_timeout: seconds(s.remember_me_timeout_seconds),
        max_per_user: s.max_per_user,
        bind_device: s.bind_device,
        reuse_grace: seconds(config.tokens.refresh_reuse_grace_seconds),
        cookie_reuse_grace: seconds(config.tokens.cookie_refresh_grace_seconds),
        require_email_verification: config.auth.require_email_verification,
        privileged_max_age: (s.privileged_max_age_seconds > 0)
            .then(|| seconds(s.privileged_max_age_seconds)),
    };
    Ok(Services::new(Dependencies {
        store,
        hasher,
        keys: Arc::new(latchkey_core::token::ActiveKeys::new(ring)),
        tokens,
        policy,
        clock,
        cache: latchkey_core::auth::AccessCache::default(),
        password_policy: password_policy(config),
        breach: breach_check(config)?,
        lockout: lockout_policy(config, secrets),
        mfa: mfa_services(config, secrets),
        background: latchkey_core::background::Background::default(),
        cursors: cursors(secrets),
        webhooks: webhook_settings(config, secrets),
        live: latchkey_core::audit::live::LiveEvents::new(
            config.events.stream_max_per_user,
            config.events.stream_max_per_node,
        ),
        links: latchkey_core::auth::MailLinks {
            product: config.mail.product_name.clone(),
            public_url: config.effective_public_url(),
            templates: Arc::new(
                latchkey_core::mail::templates::MailTemplates::load(
                    config.mail.templates_dir.as_deref(),
                )
                .map_err(|e| {
                    StartupError::Config(vec![crate::config::Problem::new(
                        "mail.templates_dir",
                        e.to_string(),
                    )])
                })?,
            ),
            notify: config.mail.notifications,
            verify_url: config.mail_link(crate::config::VERIFY_PAGE),
            reset_url: config.mail_link(crate::config::RESET_PAGE),
            outbox: Arc::new(latchkey_core::mail::OutboxSeal::new(
                secrets.keyring(latchkey_core::mail::OUTBOX_SEAL_PURPOSE),
            )),
        },
    }))
}

/// The second-factor services: TOTP seeds sealed under the master key (the
/// previous master keys still open old seeds), recovery codes keyed with the
/// HMAC key.
pub fn mfa_services(config: &Config, secrets: &ResolvedSecrets) -> MfaServices {
    MfaServices {
        seal: Arc::new(secrets.keyring(latchkey_core::mfa::TOTP_SEAL_PURPOSE)),
        recovery: latchkey_core::mfa::recovery::RecoveryHasher::new(
            secrets.hmac_key.expose().as_bytes(),
        ),
        issuer: config.mail.product_name.clone(),
        // Refused in production by validation; in dev a warning was logged.
        passkeys: config.passkey_service().ok().flatten(),
    }
}

/// Refuses to start when stored TOTP seeds were sealed with a key the ring does
/// not hold (a changed master key): every enrolled user would be shut out, so
/// say which key is missing instead of failing at each sign-in.
pub async fn check_sealed_data(services: &Services) -> Result<(), StartupError> {
    match services.mfa.missing_seal_key().await {
        Ok(None) => Ok(()),
        Ok(Some(missing)) => Err(StartupError::MissingSealKey(missing)),
        Err(e) => Err(StartupError::SealedData(e)),
    }
}

/// The background task keeping the signing keys in step with the key
/// directory, reporting each read of it to `passes`.
pub fn watch_keys(
    state: &crate::state::AppState,
    stop: tokio::sync::watch::Receiver<bool>,
    passes: crate::passes::Passes,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let config = &state.config;
    let alg = parse_algorithm(&config.tokens.algorithm).unwrap_or(Algorithm::EdDSA);
    keys::watch(
        key_storage(config, &state.store, &state.secrets),
        alg,
        Arc::clone(state.services.sessions.keys()),
        Arc::clone(&state.clock),
        key_retirement(config),
        stop,
        passes,
    )
}

/// The configured mail transport. Fails (naming the key) when the `From` address
/// or the SMTP trust roots cannot be used; connects to nothing yet.
pub fn mailer(
    config: &Config,
) -> Result<Arc<dyn latchkey_core::mail::Mailer>, crate::config::Problem> {
    use crate::config::{MailTransport, Problem, SmtpTls};
    use latchkey_adapters::mail_message::Sender;
    use latchkey_adapters::mail_smtp::{SmtpMailer, SmtpSecurity, SmtpSettings};

    let from =
        Sender::parse(&config.mail.from).map_err(|e| Problem::new("mail.from", e.to_string()))?;
    if config.mail.transport == MailTransport::File {
        return Ok(Arc::new(latchkey_adapters::mail_file::FileMailer::new(
            config.data_dir.join("mail"),
            from,
            config.mode == crate::config::Mode::Dev,
        )));
    }
    let smtp = &config.mail.smtp;
    let credentials = match (&smtp.username, smtp.resolve_password()?) {
        (Some(user), Some(password)) if !user.is_empty() => Some((
            user.clone(),
            zeroize::Zeroizing::new(password.expose().to_owned()),
        )),
        _ => None,
    };
    let extra_roots_pem = match &smtp.ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|e| {
            Problem::new(
                "mail.smtp.ca_file",
                format!("cannot read {}: {}", path.display(), e.kind()),
            )
        })?),
        None => None,
    };
    let hello_name = smtp.hello_name.clone().unwrap_or_else(|| {
        url::Url::parse(&config.effective_public_url())
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "localhost".into())
    });
    let settings = SmtpSettings {
        host: smtp.host.clone(),
        port: smtp.effective_port(),
        security: match smtp.tls {
            SmtpTls::Starttls => SmtpSecurity::StartTls,
            SmtpTls::Tls => SmtpSecurity::ImplicitTls,
            SmtpTls::None => SmtpSecurity::None,
        },
        credentials,
        extra_roots_pem,
        timeout: std::time::Duration::from_secs(smtp.timeout_seconds),
        hello_name,
        from,
    };
    let mailer =
        SmtpMailer::new(settings).map_err(|e| Problem::new("mail.smtp.ca_file", e.to_string()))?;
    Ok(Arc::new(mailer))
}

/// How webhooks are checked (`[webhooks]`) and their secrets sealed (the
/// master keyring).
pub fn webhook_settings(
    config: &Config,
    secrets: &ResolvedSecrets,
) -> latchkey_core::auth::WebhookSettings {
    latchkey_core::auth::WebhookSettings {
        seal: Arc::new(secrets.keyring(latchkey_core::auth::WEBHOOK_SEAL_PURPOSE)),
        allow_private: config.webhooks_allow_private(),
        secret_overlap: time::Duration::seconds(
            i64::try_from(config.webhooks.secret_overlap_seconds).unwrap_or(i64::MAX),
        ),
    }
}
