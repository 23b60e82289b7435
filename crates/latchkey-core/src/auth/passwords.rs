//! The passwords service: new-password rules (`new_password.rs`), checking
//! the current password, changing it, and reset by mail (`reset.rs`).

use std::sync::Arc;

use crate::audit::EventKind;
use crate::password::{PasswordHasher, PasswordPolicy, PolicyContext};
use crate::ports::{AccountPorts, Aftermath, Revocation};
use crate::session::RevokeReason;

use super::common::Common;
use super::lockout::Attempts;
use super::{new_event, AuthError, BreachCheck, ClientContext, Principal, WeakPassword};

/// Passwords. Guarantees: every check of a current password counts on the
/// address's lockout; a new password passes the whole policy (rules,
/// breached corpus, history) before it is hashed; a change or reset revokes
/// the other sessions (a reset: all) and mails the user in its transaction.
#[derive(Clone)]
pub struct Passwords {
    pub(crate) store: Arc<dyn AccountPorts>,
    pub(crate) hasher: PasswordHasher,
    /// Rules for new passwords.
    pub(crate) policy: PasswordPolicy,
    pub(crate) breach: Option<BreachCheck>,
    pub(crate) attempts: Attempts,
    pub(crate) common: Common,
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords").finish_non_exhaustive()
    }
}

impl Passwords {
    /// The hasher on its bounded pool (shared with the sign-in service).
    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// The rules a new password must pass (published by the server).
    pub fn policy(&self) -> &PasswordPolicy {
        &self.policy
    }

    /// The signed-in user, after checking their current password (for changes
    /// that need it; see [`Passwords::confirm_password`]).
    pub(crate) async fn signed_in_user_with_password(
        &self,
        principal: &Principal,
        password: &str,
    ) -> Result<crate::account::User, AuthError> {
        let user = self
            .store
            .user_by_id(principal.user_id)
            .await?
            .ok_or(AuthError::Unauthorized)?;
        self.confirm_password(&user, password).await?;
        Ok(user)
    }

    /// Checks the signed-in user's password for a sensitive change (password
    /// or email change, TOTP removal, new recovery codes). It counts on the
    /// same lockout counter as sign-in, reserved before the hash: a stolen
    /// session cannot guess the password here past the lockout either, and a
    /// locked address is `Locked` here too. A wrong password is
    /// `InvalidCredentials` and counts as a failed sign-in on the account.
    pub(crate) async fn confirm_password(
        &self,
        user: &crate::account::User,
        password: &str,
    ) -> Result<(), AuthError> {
        let key = self.attempts.policy.identifier_key(&user.email_normalized);
        let client = ClientContext::default();
        let attempt = self.attempts.reserve(&key, Some(user), &client).await?;
        let verdict = self
            .hasher
            .verify(password, &user.password_hash)
            .await
            .map_err(AuthError::Password)?;
        if !verdict.matches {
            self.attempts.failed(&attempt, Some(user), &client).await?;
            self.store
                .record_login_failure(user.id, self.common.now())
                .await?;
            self.common.cache.forget_profile(user.id);
            return Err(AuthError::InvalidCredentials);
        }
        self.attempts.released(&attempt).await?;
        Ok(())
    }

    /// Checks `current`, applies the password policy (history included) to
    /// `new`, stores its hash (the old one joins the history), and revokes every
    /// other session of the user (the calling one stays).
    /// A wrong `current` is `InvalidCredentials` and counts as a failed login.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: &str,
        new: &str,
        client: &ClientContext,
    ) -> Result<Result<(), WeakPassword>, AuthError> {
        let user = self
            .signed_in_user_with_password(principal, current)
            .await?;
        let now = self.common.now();
        let context = PolicyContext {
            email: &user.email,
            name: user.name.as_deref(),
            service: &self.common.links.product,
        };
        if let Err(weak) = self
            .check_new_password(new, &context, Some((user.id, &user.password_hash)))
            .await?
        {
            return Ok(Err(weak));
        }
        let hash = self.hasher.hash(new).await.map_err(AuthError::Password)?;
        let keep = self.policy.history.saturating_sub(1);
        // The other sessions, the event and the notice go in the password's
        // own transaction: no crash can leave the new password with the old
        // sessions alive.
        let event = new_event(
            user.id,
            EventKind::PasswordChanged,
            Some(principal.session_id),
            client,
            now,
        );
        let notice = self.common.notice_mail(
            self.common.links.notify.password_changed,
            crate::mail::templates::Template::PasswordChanged,
            &user,
            Some(client),
            minijinja::context! { reset => false },
        );
        let after = Aftermath {
            revoke: Some(Revocation {
                keep: Some(principal.session_id),
                reason: RevokeReason::PasswordChanged,
            }),
            event: Some(&event),
            mail: notice.as_ref(),
            recovery_codes: None,
        };
        self.store
            .change_password_hash(user.id, &hash, now, keep, &after)
            .await?;
        self.common.cache.forget_profile(user.id);
        self.common.cache.forget_user(user.id);
        tracing::info!("password changed; other sessions revoked");
        Ok(Ok(()))
    }
}
