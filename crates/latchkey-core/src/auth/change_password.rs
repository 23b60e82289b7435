//! `change_password`: the signed-in user replaces their password.

use crate::audit::EventKind;
use crate::password::check_length;
use crate::session::RevokeReason;

use super::{Auth, AuthError, ClientContext, Principal};

/// Why a new password was refused (maps to a `validation_failed` field error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeakPassword {
    /// Fewer characters than the minimum.
    TooShort(usize),
    /// More characters than the maximum.
    TooLong(usize),
}

impl From<crate::password::LengthError> for WeakPassword {
    fn from(e: crate::password::LengthError) -> Self {
        match e {
            crate::password::LengthError::TooShort { min } => Self::TooShort(min),
            crate::password::LengthError::TooLong { max } => Self::TooLong(max),
        }
    }
}

impl Auth {
    /// Checks `current`, applies the length rules to `new`, stores its hash, and
    /// revokes every other session of the user (the calling one stays).
    /// A wrong `current` is `InvalidCredentials` and counts as a failed login.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: &str,
        new: &str,
        limits: (usize, usize),
        client: &ClientContext,
    ) -> Result<Result<(), WeakPassword>, AuthError> {
        let user = self
            .store
            .user_by_id(principal.user_id)
            .await?
            .ok_or(AuthError::Unauthorized)?;
        let verdict = self
            .hasher
            .verify(current, &user.password_hash)
            .await
            .map_err(AuthError::Password)?;
        let now = self.clock.now();
        if !verdict.matches {
            self.store.record_login_failure(user.id, now).await?;
            self.cache.forget_profile(user.id);
            return Err(AuthError::InvalidCredentials);
        }
        if let Err(e) = check_length(new, limits.0, limits.1) {
            return Ok(Err(e.into()));
        }
        let hash = self.hasher.hash(new).await.map_err(AuthError::Password)?;
        self.store.update_password_hash(user.id, &hash, now).await?;
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
        Ok(Ok(()))
    }
}
