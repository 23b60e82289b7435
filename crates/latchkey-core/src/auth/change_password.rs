//! `change_password`: the signed-in user replaces their password.

use crate::audit::EventKind;
use crate::password::PolicyContext;
use crate::session::RevokeReason;

use super::{Auth, AuthError, ClientContext, Principal, WeakPassword};

impl Auth {
    /// The signed-in user, after checking their current password (for changes
    /// that need it). A wrong password is `InvalidCredentials` and counts as a
    /// failed sign-in.
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
        let verdict = self
            .hasher
            .verify(password, &user.password_hash)
            .await
            .map_err(AuthError::Password)?;
        if !verdict.matches {
            self.store
                .record_login_failure(user.id, self.clock.now())
                .await?;
            self.cache.forget_profile(user.id);
            return Err(AuthError::InvalidCredentials);
        }
        Ok(user)
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
        self.store
            .change_password_hash(user.id, &hash, now, keep)
            .await?;
        self.cache.forget_profile(user.id);
        let revoked = self
            .store
            .revoke_user_sessions(
                user.id,
                Some(principal.session_id),
                RevokeReason::PasswordChanged,
                now,
            )
            .await?;
        self.cache.forget_user(user.id);
        tracing::info!(revoked, "password changed; other sessions revoked");
        self.event(
            user.id,
            EventKind::PasswordChanged,
            Some(principal.session_id),
            client,
        )
        .await;
        self.notice(
            self.links.notify.password_changed,
            crate::mail::templates::Template::PasswordChanged,
            &user,
            Some(client),
            minijinja::context! { reset => false },
        )
        .await;
        Ok(Ok(()))
    }
}
