//! Accounts made by an administrator (`POST /v1/admin/users`, `latchkey users
//! create`): with a password under the same rules as sign-up, or with an
//! invite mail carrying a 72-hour set-password link.

use minijinja::context;
use time::Duration;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::access::{check_role_name, Permission, MAX_ROLES_PER_USER};
use crate::account::{normalize_email, NewUser};
use crate::audit::EventKind;
use crate::mail::new_link_token;
use crate::mail::templates::Template;
use crate::password::PolicyContext;
use crate::ports::{NewAccount, NewVerification, StoreError};

use super::admin::{guarded, Admin, AdminUser, Caller};
use super::reset::RESET_TOKEN_PREFIX;
use super::{AuthError, ClientContext, RoleProblem, WeakPassword};

/// How long the set-password link of an invite works.
pub const INVITE_TTL: Duration = Duration::hours(72);

/// An account to create. `email` and `name` are checked for shape by the
/// caller (as at sign-up).
#[derive(Clone, Default)]
pub struct CreateAccount {
    /// As typed.
    pub email: String,
    /// Display name.
    pub name: Option<String>,
    /// The first password; `None` mails an invite instead.
    pub password: Option<Zeroizing<String>>,
    /// Role names (each must exist).
    pub roles: Vec<String>,
    /// Whether the address counts as verified at once.
    pub email_verified: bool,
}

impl std::fmt::Debug for CreateAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateAccount").finish_non_exhaustive()
    }
}

impl Admin {
    /// Creates an account (`users:write`, and `roles:assign` when it gets
    /// roles). Guarantees: a password meets the same rules as at sign-up
    /// (`Ok(Err(weak))` otherwise) and only its Argon2id hash is kept; without
    /// one, the account's password is a random secret nobody knows and the
    /// address gets a set-password link valid [`INVITE_TTL`] (a
    /// password-reset token: single use, stored as its hash); the account,
    /// roles, link, mail and `account_created` event are one transaction.
    /// `Conflict` for a taken address (decided by the unique constraint, so
    /// two concurrent creations make one account); `UnknownRole` or
    /// `RoleRefused` for bad roles.
    pub async fn create_user(
        &self,
        caller: Caller<'_>,
        account: &CreateAccount,
        client: &ClientContext,
    ) -> Result<Result<AdminUser, WeakPassword>, AuthError> {
        let actor = self.authorize(caller, Permission::UsersWrite).await?;
        let mut roles = account.roles.clone();
        roles.sort();
        roles.dedup();
        if !roles.is_empty() {
            self.authorize(caller, Permission::RolesAssign).await?;
        }
        if roles.len() > MAX_ROLES_PER_USER {
            return Err(AuthError::RoleRefused(RoleProblem::TooManyForUser));
        }
        if let Some(bad) = roles.iter().find(|r| !check_role_name(r)) {
            return Err(AuthError::UnknownRole(bad.clone()));
        }
        let email_normalized = normalize_email(&account.email);
        let password_hash = if let Some(password) = &account.password {
            let context = PolicyContext {
                email: &account.email,
                name: account.name.as_deref(),
                service: &self.common.links.product,
            };
            if let Err(weak) = self
                .passwords
                .check_new_password(password, &context, None)
                .await?
            {
                return Ok(Err(weak));
            }
            self.passwords
                .hasher
                .hash(password)
                .await
                .map_err(AuthError::Password)?
        } else {
            // A password nobody knows: the account signs in only after
            // the invite's link sets one.
            let (unknown, _) = new_link_token("");
            self.passwords
                .hasher
                .hash(&unknown)
                .await
                .map_err(AuthError::Password)?
        };
        let now = self.common.now();
        let user = NewUser {
            id: Uuid::now_v7(),
            email: account.email.trim().to_owned(),
            email_normalized,
            name: account.name.clone(),
            password_hash,
            created_at: now,
        };
        let invite = if account.password.is_some() {
            None
        } else {
            let (token, token_hash) = new_link_token(RESET_TOKEN_PREFIX);
            let link = self.common.links.reset_url.replace("{token}", &token);
            let mail = self.common.compose(
                Template::Invite,
                &user.email,
                user.name.as_deref(),
                context! { link => link, hours => INVITE_TTL.whole_hours() },
            )?;
            let record = NewVerification {
                token_hash,
                user_id: user.id,
                created_at: now,
                expires_at: now + INVITE_TTL,
            };
            Some((record, mail))
        };
        let details = serde_json::json!({
            "roles": roles,
            "invited": invite.is_some(),
            "email_verified": account.email_verified,
        });
        let event = self.admin_event(user.id, created_kind(&roles), actor, client, &details);
        let created = self
            .store
            .create_account(&NewAccount {
                user: &user,
                email_verified: account.email_verified,
                roles: &roles,
                invite: invite.as_ref().map(|(t, m)| (t, m)),
                event: &event,
            })
            .await;
        match created {
            Ok(outcome) => guarded(outcome)?,
            Err(StoreError::Conflict { .. }) => return Err(AuthError::Conflict),
            Err(e) => return Err(e.into()),
        }
        self.read_user(user.id).await.map(Ok)
    }
}

/// The event of an account created (or imported) holding `roles`:
/// `admin_role_granted` when they include `admin` (every power granted: an
/// alert), else `account_created`.
pub(crate) fn created_kind(roles: &[String]) -> EventKind {
    if roles.iter().any(|r| r == crate::access::ADMIN_ROLE) {
        EventKind::AdminRoleGranted
    } else {
        EventKind::AccountCreated
    }
}
