//! `change_password`: the signed-in user replaces their password.

use crate::audit::EventKind;
use crate::password::PolicyContext;
use crate::ports::{Aftermath, Revocation};
use crate::session::RevokeReason;

use super::{new_event, Auth, AuthError, ClientContext, Principal, WeakPassword};

impl Auth {
    /// The signed-in user, after checking their current password (for changes
    /// that need it; see [`Auth::confirm_password`]).
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
        let key = self.lockout.identifier_key(&user.email_normalized);
        let client = ClientContext::default();
        let attempt = self.reserve_attempt(&key, Some(user), &client).await?;
        let verdict = self
            .hasher
            .verify(password, &user.password_hash)
            .await
            .map_err(AuthError::Password)?;
        if !verdict.matches {
            self.attempt_failed(&attempt, Some(user), &client).await?;
            self.store
                .record_login_failure(user.id, self.clock.now())
                .await?;
            self.cache.forget_profile(user.id);
            return Err(AuthError::InvalidCredentials);
        }
        self.attempt_released(&attempt).await?;
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
        let now = self.clock.now();
        let context = PolicyContext {
            email: &user.email,
            name: user.name.as_deref(),
            service: &self.links.product,
        };
        if let Err(weak) = self
            .check_new_password(new, &context, Some((user.id, &user.password_hash)))
            .await?
        {
            return Ok(Err(weak));
        }
        let hash = self.hasher.hash(new).await.map_err(AuthError::Password)?;
        let keep = self.password_policy.history.saturating_sub(1);
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
        let notice = self.notice_mail(
            self.links.notify.password_changed,
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
        self.cache.forget_profile(user.id);
        self.cache.forget_user(user.id);
        tracing::info!("password changed; other sessions revoked");
        Ok(Ok(()))
    }
}
