//! Command-line parsing and the commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use latchkey_server::config::{Config, ConfigError, KeyStorageKind, Loaded, Overrides, Problem};
use latchkey_server::startup::{open_store, shutdown_signal, SharedStore};
use latchkey_server::{telemetry, Application, StartupError};

use crate::operator::{AccountCommand, RolesCommand};

/// Exit code for a refused configuration.
const EXIT_CONFIG: u8 = 2;

/// latchkey: a self-hosted authentication server.
#[derive(Debug, Parser)]
#[command(name = "latchkey", version, about)]
pub struct Cli {
    /// Configuration file (default: ./latchkey.toml when present).
    #[arg(long, global = true, env = "LATCHKEY_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (migrates the database first).
    Serve(Place),
    /// Apply pending database migrations and exit.
    Migrate(Place),
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Delete expired sessions, tokens and old mail once, and print the counts
    /// (the server also does this every `cleanup.interval_seconds`).
    Cleanup(Place),
    /// Manage the access-token signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage user accounts.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Manage roles.
    Roles {
        #[command(subcommand)]
        command: RolesCommand,
    },
    /// Check the security events' audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the events' hash chain; exit 1 naming the first event whose hash
    /// or link is wrong (changed, deleted or moved under the store).
    Verify {
        /// Start at the first event recorded at or after this time (RFC 3339),
        /// trusting the one before it.
        #[arg(long, value_name = "TIME", value_parser = crate::audit::parse_since)]
        since: Option<time::OffsetDateTime>,
        #[command(flatten)]
        place: Place,
    },
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Lift a sign-in lock (after repeated failures) and forget the failures.
    Unlock {
        /// The account's email (any case).
        email: String,
        #[command(flatten)]
        place: Place,
    },
    #[command(flatten)]
    Account(AccountCommand),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a new signing key. It is published at once and signs after
    /// `keys.publish_ahead_seconds` (6 minutes by default), so resource servers
    /// caching the JWKS know it first; tokens signed by the old key stay valid
    /// until they expire.
    Rotate {
        /// Sign with the new key at once (emergency: a leaked key). Resource
        /// servers that cached the JWKS refuse its tokens until they refetch.
        #[arg(long)]
        now: bool,
        #[command(flatten)]
        place: Place,
    },
    /// Re-encrypt every stored secret (TOTP seeds, database signing keys) with
    /// the current master key, so previous master keys can be removed from
    /// `secrets.previous_master_keys`. Safe while servers run.
    Reencrypt(Place),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate the configuration as `serve` would, without starting anything.
    Check {
        /// Also print the effective configuration, each value with its source
        /// (default, file, env, flag); secrets as `<set>`.
        #[arg(long)]
        show: bool,
        #[command(flatten)]
        place: Place,
    },
}

/// Flags that override every other configuration layer.
#[derive(Debug, clap::Args)]
pub struct Place {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Data directory (SQLite database, dev secrets, dev mail).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl Command {
    /// The flags every command takes (where it runs).
    fn place(&self) -> &Place {
        match self {
            Self::Serve(place)
            | Self::Migrate(place)
            | Self::Cleanup(place)
            | Self::Config {
                command: ConfigCommand::Check { place, .. },
            }
            | Self::Keys {
                command: KeysCommand::Rotate { place, .. } | KeysCommand::Reencrypt(place),
            }
            | Self::Users {
                command: UsersCommand::Unlock { place, .. },
            }
            | Self::Audit {
                command: AuditCommand::Verify { place, .. },
            } => place,
            Self::Users {
                command: UsersCommand::Account(command),
            } => command.place(),
            Self::Roles { command } => command.place(),
        }
    }
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> ExitCode {
    let place = cli.command.place();
    let overrides = Overrides {
        config_file: cli.config.clone(),
        listen: place.listen,
        data_dir: place.data_dir.clone(),
    };
    let loaded = match Config::load(&overrides, std::env::vars()) {
        Ok(loaded) => loaded,
        Err(e) => return refuse_load(&e),
    };
    match &cli.command {
        Command::Serve(_) => serve(loaded).await,
        Command::Migrate(_) => migrate(loaded).await,
        Command::Cleanup(_) => cleanup(loaded).await,
        Command::Config {
            command: ConfigCommand::Check { show, .. },
        } => check(&loaded, *show),
        Command::Keys {
            command: KeysCommand::Rotate { now, .. },
        } => rotate_keys(&loaded, *now).await,
        Command::Keys {
            command: KeysCommand::Reencrypt(_),
        } => reencrypt(&loaded).await,
        Command::Users {
            command: UsersCommand::Unlock { email, .. },
        } => crate::operator::unlock(&loaded, email).await,
        Command::Users {
            command: UsersCommand::Account(command),
        } => crate::operator::accounts(&loaded, command).await,
        Command::Roles { command } => crate::operator::roles(&loaded, command).await,
        Command::Audit {
            command: AuditCommand::Verify { since, .. },
        } => crate::audit::verify_chain(&loaded, *since).await,
    }
}

fn refuse_load(e: &ConfigError) -> ExitCode {
    for line in e.to_string().lines() {
        eprintln!("latchkey: configuration error: {line}");
    }
    ExitCode::from(EXIT_CONFIG)
}

fn refuse(problems: &[Problem]) -> ExitCode {
    for p in problems {
        eprintln!("latchkey: configuration problem: {p}");
    }
    eprintln!(
        "latchkey: refusing to start ({} problem(s)); see docs/configuration.md",
        problems.len()
    );
    ExitCode::from(EXIT_CONFIG)
}

fn check(loaded: &Loaded, show: bool) -> ExitCode {
    if show {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for line in latchkey_server::config::show(&loaded.config, &loaded.origins) {
            // A closed pipe (`| head`) ends the listing, not the process.
            if writeln!(out, "{line}").is_err() {
                break;
            }
        }
    }
    for w in &loaded.warnings {
        eprintln!("latchkey: warning: {w}");
    }
    let (problems, warnings) = loaded.config.validate();
    for w in &warnings {
        eprintln!("latchkey: warning: {w}");
    }
    if !problems.is_empty() {
        return refuse(&problems);
    }
    let mode = match loaded.config.mode {
        latchkey_server::config::Mode::Dev => "dev",
        latchkey_server::config::Mode::Production => "production",
    };
    println!("configuration OK (mode: {mode})");
    ExitCode::SUCCESS
}

pub(crate) fn startup_failed(e: &StartupError) -> ExitCode {
    match e {
        StartupError::Config(problems) => refuse(problems),
        other => {
            tracing::error!(error = %other, "start-up failed");
            eprintln!("latchkey: {other}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(loaded: Loaded) -> ExitCode {
    telemetry::init_logging(&loaded.config.log, loaded.config.mode);
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let app = match Application::build(loaded.config).await {
        Ok(app) => app,
        Err(e) => return startup_failed(&e),
    };
    // Signals are caught from here on: a SIGTERM right after the address is
    // printed stops the server gracefully.
    let stop = shutdown_signal();
    let scheme = if app.is_tls() { "https" } else { "http" };
    println!("latchkey listening on {scheme}://{}", app.local_addr());
    if let Some(addr) = app.metrics_addr() {
        println!("latchkey metrics on http://{addr}/metrics");
    }
    tracing::info!(addr = %app.local_addr(), backend = app.state().store.backend(), "serving");
    for line in app.summary() {
        tracing::info!(target: "latchkey::startup", "{line}");
    }
    app.run_until(stop).await;
    ExitCode::SUCCESS
}

async fn migrate(loaded: Loaded) -> ExitCode {
    telemetry::init_logging(&loaded.config.log, loaded.config.mode);
    let (problems, _) = loaded.config.validate();
    if !problems.is_empty() {
        return refuse(&problems);
    }
    match open_store(&loaded.config).await {
        Ok(store) => {
            println!("migrations applied ({})", store.backend());
            store.close().await;
            ExitCode::SUCCESS
        }
        Err(e) => startup_failed(&e),
    }
}

async fn rotate_keys(loaded: &Loaded, at_once: bool) -> ExitCode {
    let config = &loaded.config;
    let (problems, _) = config.validate();
    if !problems.is_empty() {
        return refuse(&problems);
    }
    let Some(alg) = latchkey_server::auth_setup::parse_algorithm(&config.tokens.algorithm) else {
        return refuse(&[Problem::new(
            "tokens.algorithm",
            "use EdDSA, ES256 or RS256",
        )]);
    };
    let secrets = match latchkey_server::config::secrets_resolve(config) {
        Ok(secrets) => secrets,
        Err(problem) => return refuse(&[problem]),
    };
    // Files need no database; the database storage does.
    let store = if config.key_storage() == KeyStorageKind::Database {
        match open_store(config).await {
            Ok(store) => Some(store),
            Err(e) => return startup_failed(&e),
        }
    } else {
        None
    };
    let storage = match &store {
        Some(store) => latchkey_server::auth_setup::key_storage(config, store, &secrets),
        None => latchkey_server::keys::KeyStorage::Files(latchkey_server::keys::key_dir(
            &config.data_dir,
        )),
    };
    let now = latchkey_server::wall_clock_now();
    let activates_at = latchkey_server::auth_setup::activation(config, now, at_once);
    let result = storage
        .rotate(
            alg,
            now,
            activates_at,
            latchkey_server::auth_setup::key_retirement(config),
        )
        .await;
    if let Some(store) = store {
        store.close().await;
    }
    match result {
        Ok(key) => {
            if at_once {
                println!(
                    "new signing key {} ({}); running servers sign with it within seconds",
                    key.kid(),
                    alg.name()
                );
            } else {
                println!(
                    "new signing key {} ({}); published now, running servers sign with it from {}",
                    key.kid(),
                    alg.name(),
                    activates_at
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("latchkey: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A valid configuration's secrets and an open store, or the exit code after the
/// reason was printed.
pub(crate) async fn secrets_and_store(
    config: &Config,
) -> Result<(latchkey_server::config::ResolvedSecrets, SharedStore), ExitCode> {
    let (problems, _) = config.validate();
    if !problems.is_empty() {
        return Err(refuse(&problems));
    }
    let secrets =
        latchkey_server::config::secrets_resolve(config).map_err(|problem| refuse(&[problem]))?;
    let store = open_store(config).await.map_err(|e| startup_failed(&e))?;
    Ok((secrets, store))
}

async fn reencrypt(loaded: &Loaded) -> ExitCode {
    let config = &loaded.config;
    let (secrets, store) = match secrets_and_store(config).await {
        Ok(ready) => ready,
        Err(code) => return code,
    };
    let result = latchkey_server::reencrypt::run(&*store, &secrets).await;
    store.close().await;
    match result {
        Ok(r) => {
            println!(
                "re-encrypted with the current master key: {} TOTP secrets, {} signing keys",
                r.totp_secrets, r.signing_keys
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("latchkey: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn cleanup(loaded: Loaded) -> ExitCode {
    telemetry::init_logging(&loaded.config.log, loaded.config.mode);
    let (problems, _) = loaded.config.validate();
    if !problems.is_empty() {
        return refuse(&problems);
    }
    let store = match open_store(&loaded.config).await {
        Ok(store) => store,
        Err(e) => return startup_failed(&e),
    };
    let cleaner = latchkey_core_cleaner();
    let result = latchkey_server::cleanup_task::run_once(
        &cleaner,
        &*store,
        &latchkey_server::SystemClockHandle,
    )
    .await;
    store.close().await;
    match result {
        Some(Ok(r)) => {
            println!(
                "removed: {} sessions, {} refresh tokens, {} denylist entries, {} verification tokens, {} old mails, {} MFA challenges, {} idle lockout counters, {} idempotency records, {} webhook deliveries",
                r.sessions, r.refresh_tokens, r.denied_access_tokens, r.verification_tokens, r.old_mail, r.mfa_challenges, r.login_throttles, r.idempotency_keys, r.webhook_deliveries
            );
            ExitCode::SUCCESS
        }
        Some(Err(e)) => {
            eprintln!("latchkey: cleanup failed: {e}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    }
}

fn latchkey_core_cleaner() -> latchkey_server::Cleaner {
    latchkey_server::Cleaner::default()
}
