//! The operator commands on accounts and roles (`latchkey users ...`,
//! `latchkey roles ...`). They run the admin service on the configured
//! database as the operator (allowed everything: whoever runs them holds the
//! database and the secrets already), on a stopped or running server alike:
//! every change drops the running servers' caches at once over the cache bus
//! when `redis.url` is set, and within their TTL otherwise.

use std::process::ExitCode;

use clap::Subcommand;
use latchkey_server::config::Loaded;
use latchkey_server::core::access::Permission;
use latchkey_server::core::auth::{
    Admin, AdminUser, AuthError, Caller, ClientContext, ImportReport, ImportStopped, Services,
};
use latchkey_server::core::page::MAX_LIMIT;
use latchkey_server::startup::SharedStore;

use latchkey_server::error::ApiError;
use latchkey_server::routes::input::{new_account, AccountInput};

use crate::cli::{secrets_and_store, Place};

/// Exit code for "not found" or "refused".
const EXIT_REFUSED: u8 = 1;

/// `latchkey users ...` beyond `unlock`.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account, with a password read from standard input or with an
    /// invite mail carrying a 72-hour set-password link.
    Create(CreateArgs),
    /// Import accounts from a JSON-lines file (`{email, name?, email_verified?,
    /// password_hash?, roles?}` per line; Argon2 or bcrypt hashes stored as
    /// given). A file with any bad line imports nothing; addresses that have
    /// an account already are skipped.
    Import {
        /// The file (`-` for standard input).
        file: std::path::PathBuf,
        #[command(flatten)]
        place: Place,
    },
    /// Write every account as a JSON line (the import format).
    Export {
        /// JSON lines (the only format; for clarity in scripts).
        #[arg(long)]
        json: bool,
        /// Include each password hash (secret material: handle the output
        /// like the database).
        #[arg(long)]
        with_password_hashes: bool,
        #[command(flatten)]
        place: Place,
    },
    /// List accounts (or search: an exact email, an id, a name prefix).
    List {
        /// What to search for.
        #[arg(long)]
        query: Option<String>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        place: Place,
    },
    /// Show one account.
    Show {
        /// The account's email (any case).
        email: String,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        place: Place,
    },
    /// Disable an account: every session revoked, sign-in refused.
    Disable {
        /// The account's email (any case).
        email: String,
        #[command(flatten)]
        place: Place,
    },
    /// Enable a disabled account.
    Enable {
        /// The account's email (any case).
        email: String,
        #[command(flatten)]
        place: Place,
    },
    /// Revoke every session of an account.
    Logout {
        /// The account's email (any case).
        email: String,
        #[command(flatten)]
        place: Place,
    },
    /// Give an account a role (`admin` makes the first administrator).
    Grant {
        /// The account's email (any case).
        email: String,
        /// The role's name.
        role: String,
        #[command(flatten)]
        place: Place,
    },
    /// Take a role from an account.
    Revoke {
        /// The account's email (any case).
        email: String,
        /// The role's name.
        role: String,
        #[command(flatten)]
        place: Place,
    },
}

/// `latchkey users create`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("first_password").required(true).args(["password_stdin", "invite"])))]
pub struct CreateArgs {
    /// The account's email.
    email: String,
    /// Display name.
    #[arg(long)]
    name: Option<String>,
    /// Read the password from standard input (one line; the sign-up rules apply).
    #[arg(long)]
    password_stdin: bool,
    /// Mail a set-password link instead (sent by the server's mail worker).
    #[arg(long)]
    invite: bool,
    /// A role to give (repeat the flag for more).
    #[arg(long = "role", value_name = "ROLE")]
    roles: Vec<String>,
    /// Count the address as verified.
    #[arg(long)]
    email_verified: bool,
    #[command(flatten)]
    place: Place,
}

/// `latchkey roles ...`
#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// List the roles and their permissions.
    List(Place),
    /// Create a role.
    Create {
        /// `^[a-z][a-z0-9_-]{0,63}$`.
        name: String,
        /// A permission it grants (repeat the flag for more).
        #[arg(long = "permission", value_name = "PERMISSION")]
        permissions: Vec<String>,
        /// What it is for.
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        place: Place,
    },
    /// Delete a role (taken from every holder); `admin` cannot be deleted.
    Delete {
        /// The role's name.
        name: String,
        #[command(flatten)]
        place: Place,
    },
}

impl AccountCommand {
    /// Where the command runs.
    pub fn place(&self) -> &Place {
        match self {
            Self::Create(CreateArgs { place, .. })
            | Self::Import { place, .. }
            | Self::Export { place, .. }
            | Self::List { place, .. }
            | Self::Show { place, .. }
            | Self::Disable { place, .. }
            | Self::Enable { place, .. }
            | Self::Logout { place, .. }
            | Self::Grant { place, .. }
            | Self::Revoke { place, .. } => place,
        }
    }
}

impl RolesCommand {
    /// Where the command runs.
    pub fn place(&self) -> &Place {
        match self {
            Self::List(place) | Self::Create { place, .. } | Self::Delete { place, .. } => place,
        }
    }
}

/// What a command holds open while it runs: the database and, with
/// `redis.url` set, the cache bus that tells running servers what it changed.
struct Held {
    store: SharedStore,
    bus: Option<latchkey_server::cache_bus::Publisher>,
}

impl Held {
    /// Sends the command's cache drops to the running servers, then closes
    /// the database. When Redis does not take them, says so: the change is
    /// made, and running servers show it once their cached answers expire.
    async fn close(self) {
        if let Some(bus) = self.bus {
            if !bus.finish().await {
                eprintln!(
                    "latchkey: note: Redis did not take the change notice; running servers show the change within {} s",
                    latchkey_server::core::auth::CACHE_TTL.as_secs()
                );
            }
        }
        self.store.close().await;
    }
}

/// The services on the configured database, or the exit code after the
/// reason was printed. With Redis configured, every cache drop the command
/// makes (a role, a disabled account, sessions) reaches the running servers
/// at once over the cache bus, not within their cache TTL.
async fn services(loaded: &Loaded) -> Result<(Services, Held), ExitCode> {
    let config = &loaded.config;
    let (secrets, store) = secrets_and_store(config).await?;
    match latchkey_server::auth_setup::operator_services(
        config,
        std::sync::Arc::clone(&store),
        &secrets,
    )
    .await
    {
        Ok(services) => {
            let bus = latchkey_server::cache_bus::for_operator(config, &services);
            Ok((services, Held { store, bus }))
        }
        Err(e) => {
            store.close().await;
            Err(crate::cli::startup_failed(&e))
        }
    }
}

/// Why an operator command did nothing.
#[derive(Debug)]
enum Refusal {
    /// The admin service refused or failed.
    Auth(AuthError),
    /// The input is not acceptable (what is wrong, for the operator).
    Input(String),
    /// An import failed after writing some of its batches.
    Stopped(ImportStopped),
}

impl From<AuthError> for Refusal {
    fn from(e: AuthError) -> Self {
        Self::Auth(e)
    }
}

/// One line of standard input, without its line break: the password of
/// `users create --password-stdin` (never an argument: those show in `ps`).
fn read_password() -> Result<zeroize::Zeroizing<String>, Refusal> {
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin().read_line(&mut line).map_err(|e| {
        Refusal::Input(format!("cannot read the password from standard input: {e}"))
    })?;
    let password = zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned());
    if password.is_empty() {
        return Err(Refusal::Input("no password on standard input".into()));
    }
    Ok(password)
}

/// The bytes of `path` (`-`: standard input), refused beyond
/// [`MAX_FILE`](latchkey_server::import::MAX_FILE) bytes without reading more.
fn read_file(path: &std::path::Path) -> Result<Vec<u8>, Refusal> {
    use std::io::Read as _;
    let cap = latchkey_server::import::MAX_FILE;
    let mut bytes = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin()
            .take(cap + 1)
            .read_to_end(&mut bytes)
            .map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|f| f.take(cap + 1).read_to_end(&mut bytes).map(|_| ()))
    };
    read.map_err(|e| Refusal::Input(format!("cannot read {}: {e}", path.display())))?;
    if bytes.len() as u64 > cap {
        return Err(Refusal::Input(format!(
            "{} is larger than {cap} bytes: split it into several files (nothing imported)",
            path.display()
        )));
    }
    Ok(bytes)
}

/// The field problems of a refused input, one per line.
fn problems(e: &ApiError) -> String {
    match e {
        ApiError::Validation(errors) => errors
            .iter()
            .map(|f| format!("{}: {} ({})", f.field, f.message, f.code))
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

/// Prints why an operation was refused and gives the exit code.
fn refused(refusal: &Refusal) -> ExitCode {
    let e = match refusal {
        Refusal::Input(text) => {
            eprintln!("latchkey: {text}");
            return ExitCode::from(EXIT_REFUSED);
        }
        Refusal::Auth(e) => e,
        Refusal::Stopped(stopped) => {
            eprintln!(
                "latchkey: import stopped: {} created, {} skipped (address taken already) before the failure; those are kept, run the same file again to finish",
                stopped.written.created, stopped.written.skipped
            );
            &stopped.cause
        }
    };
    let text = match e {
        AuthError::NotFound => "no such account or role".to_owned(),
        AuthError::LastAdmin => {
            "refused: this is the last enabled administrator (grant admin to another account first)"
                .to_owned()
        }
        AuthError::BuiltinRole => "refused: the admin role is built in".to_owned(),
        AuthError::UnknownRole(name) => format!("no role named {name:?}"),
        AuthError::Conflict => "refused: that name or address is taken".to_owned(),
        AuthError::RoleRefused(problem) => format!("refused: {problem:?}"),
        AuthError::Store(e) => format!("database: {e}"),
        other => format!("refused: {other}"),
    };
    eprintln!("latchkey: {text}");
    ExitCode::from(EXIT_REFUSED)
}

/// One account as a line of text.
fn line(a: &AdminUser) -> String {
    let u = &a.user;
    format!(
        "{}  {}  roles={}  {}{}  sessions={}",
        u.id,
        u.email,
        if u.roles.is_empty() {
            "-".to_owned()
        } else {
            u.roles.join(",")
        },
        if u.disabled_at.is_some() {
            "disabled"
        } else {
            "enabled"
        },
        if u.email_verified_at.is_some() {
            ""
        } else {
            " unverified"
        },
        a.session_count
    )
}

/// One account as JSON: the `users export` record (never a hash) with the
/// account's id, state and creation time.
fn json(a: &AdminUser) -> String {
    let u = &a.user;
    let mut record = latchkey_server::import::export_record(u, false);
    record["id"] = serde_json::json!(u.id);
    record["disabled"] = serde_json::json!(u.disabled_at.is_some());
    record["created_at"] = serde_json::json!(latchkey_server::core::time_fmt::format_rfc3339(
        u.created_at
    ));
    record.to_string()
}

/// Runs an account command.
pub async fn accounts(loaded: &Loaded, command: &AccountCommand) -> ExitCode {
    let (services, held) = match services(loaded).await {
        Ok(ready) => ready,
        Err(code) => return code,
    };
    let admin = &services.admin;
    let op = Caller::Operator;
    let client = ClientContext::default();
    let result = async {
        match command {
            AccountCommand::Create(args) => create(admin, loaded, args, &client).await,
            AccountCommand::Import { file, .. } => import(admin, file, &client).await,
            AccountCommand::Export {
                with_password_hashes,
                ..
            } => {
                each_account(admin, None, |a| {
                    let line = latchkey_server::import::export_line(&a.user, *with_password_hashes);
                    println!("{line}");
                })
                .await?;
                Ok(String::new())
            }
            AccountCommand::List {
                query,
                json: as_json,
                ..
            } => {
                each_account(admin, query.as_deref(), |a| {
                    println!("{}", if *as_json { json(a) } else { line(a) });
                })
                .await?;
                Ok(String::new())
            }
            AccountCommand::Show {
                email,
                json: as_json,
                ..
            } => {
                let a = admin.user_by_email(op, email).await?;
                Ok(if *as_json { json(&a) } else { line(&a) })
            }
            AccountCommand::Disable { email, .. } => {
                let id = admin.user_by_email(op, email).await?.user.id;
                admin.disable(op, id, &client).await?;
                Ok("disabled: every session revoked".to_owned())
            }
            AccountCommand::Enable { email, .. } => {
                let id = admin.user_by_email(op, email).await?.user.id;
                admin.enable(op, id, &client).await?;
                Ok("enabled".to_owned())
            }
            AccountCommand::Logout { email, .. } => {
                let id = admin.user_by_email(op, email).await?.user.id;
                let n = admin.logout_everywhere(op, id, &client).await?;
                Ok(format!("{n} session(s) revoked"))
            }
            AccountCommand::Grant { email, role, .. } => {
                let id = admin.user_by_email(op, email).await?.user.id;
                let a = admin.grant(op, id, role, &client).await?;
                Ok(format!("roles: {}", a.user.roles.join(",")))
            }
            AccountCommand::Revoke { email, role, .. } => {
                let id = admin.user_by_email(op, email).await?.user.id;
                let a = admin.revoke(op, id, role, &client).await?;
                Ok(format!("roles: {}", a.user.roles.join(",")))
            }
        }
    }
    .await;
    held.close().await;
    finish(result)
}

/// `latchkey users unlock EMAIL`: lifts the address's sign-in lock through
/// the admin service (the same rule and event as the admin API).
pub async fn unlock(loaded: &Loaded, email: &str) -> ExitCode {
    let (services, held) = match services(loaded).await {
        Ok(ready) => ready,
        Err(code) => return code,
    };
    let result = services
        .admin
        .unlock_address(Caller::Operator, email, &ClientContext::default())
        .await;
    held.close().await;
    finish(match result {
        Ok(true) => Ok("unlocked: failed sign-ins forgotten".to_owned()),
        Ok(false) => {
            Ok("nothing to unlock: no failed sign-ins recorded for that address".to_owned())
        }
        Err(e) => Err(Refusal::Auth(e)),
    })
}

/// Calls `each` for every account matching `query` (all when `None`), page
/// by page.
async fn each_account(
    admin: &Admin,
    query: Option<&str>,
    mut each: impl FnMut(&AdminUser),
) -> Result<(), AuthError> {
    let mut cursor: Option<String> = None;
    loop {
        let page = admin
            .users(Caller::Operator, query, cursor.as_deref(), Some(MAX_LIMIT))
            .await?;
        page.items.iter().for_each(&mut each);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// `users create`.
async fn create(
    admin: &Admin,
    loaded: &Loaded,
    args: &CreateArgs,
    client: &ClientContext,
) -> Result<String, Refusal> {
    let password = if args.password_stdin {
        Some(read_password()?)
    } else {
        None
    };
    let input = AccountInput {
        email: args.email.clone(),
        name: args.name.clone(),
        password,
        roles: args.roles.clone(),
        email_verified: args.email_verified,
    };
    let account = new_account(input, loaded.config.password.max_length)
        .map_err(|e| Refusal::Input(problems(&e)))?;
    match admin
        .create_user(Caller::Operator, &account, client)
        .await?
    {
        Ok(a) if account.password.is_none() => Ok(format!(
            "created {} (invite queued: the server's mail worker sends it)",
            line(&a)
        )),
        Ok(a) => Ok(format!("created {}", line(&a))),
        Err(weak) => Err(Refusal::Input(format!("refused password: {weak:?}"))),
    }
}

/// `users import FILE`: every line checked first; a file with any problem
/// imports nothing.
async fn import(
    admin: &Admin,
    file: &std::path::Path,
    client: &ClientContext,
) -> Result<String, Refusal> {
    let text = read_file(file)?;
    let records = latchkey_server::import::parse(&text, admin).map_err(|problems| {
        Refusal::Input(
            problems
                .iter()
                .map(|p| format!("line {}: {}", p.line, p.problem))
                .chain(std::iter::once("nothing imported".to_owned()))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    let report = admin
        .import_users(Caller::Operator, &records, client)
        .await
        .map_err(|stopped| {
            if stopped.written == ImportReport::default() {
                Refusal::Auth(stopped.cause)
            } else {
                Refusal::Stopped(stopped)
            }
        })?;
    Ok(format!(
        "imported: {} created, {} skipped (address taken already)",
        report.created, report.skipped
    ))
}

/// Runs a roles command.
pub async fn roles(loaded: &Loaded, command: &RolesCommand) -> ExitCode {
    let (services, held) = match services(loaded).await {
        Ok(ready) => ready,
        Err(code) => return code,
    };
    let admin = &services.admin;
    let op = Caller::Operator;
    let client = ClientContext::default();
    let result = async {
        match command {
            RolesCommand::List(_) => {
                let lines: Vec<String> = admin
                    .roles(op)
                    .await?
                    .iter()
                    .map(|r| {
                        format!(
                            "{}{}  {}",
                            r.name,
                            if r.builtin { " (built in)" } else { "" },
                            r.grants()
                                .iter()
                                .map(Permission::as_str)
                                .collect::<Vec<_>>()
                                .join(" ")
                        )
                    })
                    .collect();
                Ok(lines.join("\n"))
            }
            RolesCommand::Create {
                name,
                permissions,
                description,
                ..
            } => {
                admin
                    .create_role(op, name, description, permissions, &client)
                    .await?;
                Ok(format!("role {name} created"))
            }
            RolesCommand::Delete { name, .. } => {
                admin.delete_role(op, name, &client).await?;
                Ok(format!("role {name} deleted"))
            }
        }
    }
    .await;
    held.close().await;
    finish(result)
}

fn finish(result: Result<String, Refusal>) -> ExitCode {
    match result {
        Ok(text) => {
            if !text.is_empty() {
                println!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => refused(&e),
    }
}
