//! `latchkey users import`: accounts from another system, with the password
//! hashes they had there (Argon2 or bcrypt), stored as given and re-hashed to
//! the configured Argon2id at each account's first sign-in.

use uuid::Uuid;

use crate::access::{check_role_name, Permission, MAX_ROLES_PER_USER};
use crate::account::{normalize_email, NewUser};
use crate::mail::new_link_token;
use crate::ports::ImportedAccount;

use super::admin::{guarded, Admin, Caller};
use super::{AuthError, ClientContext, RoleProblem};

/// Accounts written per transaction.
pub const IMPORT_BATCH: usize = 1_000;

/// One account to import, its shape checked by the caller.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ImportRecord {
    /// Address.
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// Whether the address counts as verified.
    pub email_verified: bool,
    /// The hash from the other system (checked with
    /// [`crate::password::PasswordHasher::check_importable`]); `None`: the
    /// account has no usable password until a reset.
    pub password_hash: Option<String>,
    /// Role names.
    pub roles: Vec<String>,
}

impl std::fmt::Debug for ImportRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportRecord").finish_non_exhaustive()
    }
}

/// What an import did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportReport {
    /// Accounts created.
    pub created: u64,
    /// Records skipped: their address had an account already.
    pub skipped: u64,
}

/// Why an import stopped, and what it had written by then: the batches
/// before the failing one stay written (each batch is one transaction, all or
/// nothing), so running the same records again skips them and finishes the
/// job. `written` is all zero when the import was refused before writing.
#[derive(Debug)]
pub struct ImportStopped {
    /// What the batches written before the failure did.
    pub written: ImportReport,
    /// The failure.
    pub cause: AuthError,
}

impl From<AuthError> for ImportStopped {
    fn from(cause: AuthError) -> Self {
        Self {
            written: ImportReport::default(),
            cause,
        }
    }
}

impl Admin {
    /// Whether `stored` may be imported as a password hash (no hashing work).
    pub fn importable_hash(&self, stored: &str) -> bool {
        self.passwords.hasher.check_importable(stored).is_ok()
    }

    /// Imports `records` (`users:write`, and `roles:assign` when any has
    /// roles), [`IMPORT_BATCH`] per transaction. Guarantees: no hashing per
    /// account (the given hash is stored; an account without one gets a hash
    /// of a secret made and forgotten in this call, which no password
    /// matches); every hash is checked again here and a bad one refuses the
    /// whole import before anything is written (`UnimportableHash`), and so
    /// does a role that does not exist (`UnknownRole`); an address that has an
    /// account already is skipped, so a re-run after a failure finishes the
    /// job ([`ImportStopped`] says what the failed run wrote); each account
    /// created is an `account_created` event.
    pub async fn import_users(
        &self,
        caller: Caller<'_>,
        records: &[ImportRecord],
        client: &ClientContext,
    ) -> Result<ImportReport, ImportStopped> {
        let actor = self.authorize(caller, Permission::UsersWrite).await?;
        if records.iter().any(|r| !r.roles.is_empty()) {
            self.authorize(caller, Permission::RolesAssign).await?;
        }
        for r in records {
            if r.roles.len() > MAX_ROLES_PER_USER {
                return Err(AuthError::RoleRefused(RoleProblem::TooManyForUser).into());
            }
            if let Some(bad) = r.roles.iter().find(|n| !check_role_name(n)) {
                return Err(AuthError::UnknownRole(bad.clone()).into());
            }
            if r.password_hash
                .as_deref()
                .is_some_and(|h| !self.importable_hash(h))
            {
                return Err(AuthError::UnimportableHash.into());
            }
        }
        self.check_roles_exist(records).await?;
        let unusable = if records.iter().any(|r| r.password_hash.is_none()) {
            let (secret, _) = new_link_token("");
            Some(
                self.passwords
                    .hasher
                    .hash(&secret)
                    .await
                    .map_err(AuthError::Password)?,
            )
        } else {
            None
        };
        let mut report = ImportReport::default();
        for batch in records.chunks(IMPORT_BATCH) {
            let now = self.common.now();
            let accounts: Vec<ImportedAccount> = batch
                .iter()
                .map(|r| {
                    let mut roles = r.roles.clone();
                    roles.sort();
                    roles.dedup();
                    let id = Uuid::now_v7();
                    let details = serde_json::json!({
                        "imported": true,
                        "roles": roles,
                        "email_verified": r.email_verified,
                    });
                    let kind = super::admin_create::created_kind(&roles);
                    ImportedAccount {
                        user: NewUser {
                            id,
                            email: r.email.trim().to_owned(),
                            email_normalized: normalize_email(&r.email),
                            name: r.name.clone(),
                            password_hash: r
                                .password_hash
                                .clone()
                                .or_else(|| unusable.clone())
                                .unwrap_or_default(),
                            created_at: now,
                        },
                        email_verified: r.email_verified,
                        roles,
                        event: self.admin_event(id, kind, actor, client, &details),
                    }
                })
                .collect();
            let created = self
                .store
                .import_accounts(&accounts)
                .await
                .map_err(AuthError::from)
                .and_then(guarded)
                .map_err(|cause| ImportStopped {
                    written: report,
                    cause,
                })?;
            report.created += created;
            report.skipped += batch.len() as u64 - created;
        }
        Ok(report)
    }

    /// `UnknownRole` naming the first role of `records` that does not exist
    /// (one read of the roles, none when no record names a role). A role
    /// deleted after this check still stops its batch in the store.
    async fn check_roles_exist(&self, records: &[ImportRecord]) -> Result<(), AuthError> {
        if records.iter().all(|r| r.roles.is_empty()) {
            return Ok(());
        }
        let known: std::collections::HashSet<String> = self
            .store
            .roles()
            .await?
            .into_iter()
            .map(|r| r.name)
            .collect();
        match records
            .iter()
            .flat_map(|r| &r.roles)
            .find(|name| !known.contains(*name))
        {
            Some(missing) => Err(AuthError::UnknownRole(missing.clone())),
            None => Ok(()),
        }
    }
}
