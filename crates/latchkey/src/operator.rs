//! The operator commands on accounts and roles (`latchkey users ...`,
//! `latchkey roles ...`). They run the admin service on the configured
//! database as the operator (allowed everything: whoever runs them holds the
//! database and the secrets already), on a stopped or running server alike:
//! every change drops the running servers' caches within their TTL.

use std::process::ExitCode;

use clap::Subcommand;
use latchkey_server::config::Loaded;
use latchkey_server::core::access::Permission;
use latchkey_server::core::auth::{AdminUser, AuthError, Caller, ClientContext, Services};
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
    #[command(group(clap::ArgGroup::new("first_password").required(true).args(["password_stdin", "invite"])))]
    Create {
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
            Self::Create { place, .. }
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

/// The services on the configured database, or the exit code after the
/// reason was printed.
async fn services(loaded: &Loaded) -> Result<(Services, SharedStore), ExitCode> {
    let (secrets, store) = secrets_and_store(&loaded.config).await?;
    match latchkey_server::auth_setup::operator_services(
        &loaded.config,
        std::sync::Arc::clone(&store),
        &secrets,
    )
    .await
    {
        Ok(services) => Ok((services, store)),
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

/// One account as JSON (the `users export` shape, without hashes).
fn json(a: &AdminUser) -> String {
    let u = &a.user;
    serde_json::json!({
        "id": u.id,
        "email": u.email,
        "name": u.name,
        "email_verified": u.email_verified_at.is_some(),
        "roles": u.roles,
        "disabled": u.disabled_at.is_some(),
        "created_at": latchkey_server::core::time_fmt::format_rfc3339(u.created_at),
    })
    .to_string()
}

/// Runs an account command.
pub async fn accounts(loaded: &Loaded, command: &AccountCommand) -> ExitCode {
    let (services, store) = match services(loaded).await {
        Ok(ready) => ready,
        Err(code) => return code,
    };
    let admin = &services.admin;
    let op = Caller::Operator;
    let client = ClientContext::default();
    let result = async {
        match command {
            AccountCommand::Create {
                email,
                name,
                password_stdin,
                roles,
                email_verified,
                ..
            } => {
                let password = if *password_stdin {
                    Some(read_password()?)
                } else {
                    None
                };
                let input = AccountInput {
                    email: email.clone(),
                    name: name.clone(),
                    password,
                    roles: roles.clone(),
                    email_verified: *email_verified,
                };
                let account = new_account(input, loaded.config.password.max_length)
                    .map_err(|e| Refusal::Input(problems(&e)))?;
                match admin.create_user(op, &account, &client).await? {
                    Ok(a) if account.password.is_none() => Ok(format!(
                        "created {} (invite queued: the server's mail worker sends it)",
                        line(&a)
                    )),
                    Ok(a) => Ok(format!("created {}", line(&a))),
                    Err(weak) => Err(Refusal::Input(format!("refused password: {weak:?}"))),
                }
            }
            AccountCommand::List {
                query,
                json: as_json,
                ..
            } => {
                let mut cursor: Option<String> = None;
                loop {
                    let page = admin
                        .users(op, query.as_deref(), cursor.as_deref(), Some(MAX_LIMIT))
                        .await?;
                    for a in &page.items {
                        println!("{}", if *as_json { json(a) } else { line(a) });
                    }
                    match page.next_cursor {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
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
    store.close().await;
    finish(result)
}

/// Runs a roles command.
pub async fn roles(loaded: &Loaded, command: &RolesCommand) -> ExitCode {
    let (services, store) = match services(loaded).await {
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
    store.close().await;
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
