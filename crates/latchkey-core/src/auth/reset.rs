//! Password reset: `forgot` mails a single-use link, `reset` sets a new
//! password with it.
//!
//! Guarantees: a reset token is 256 random bits stored as its SHA-256, valid
//! 30 minutes, single use, and only the newest one of a user works; `forgot`
//! does the same visible thing for every address (the caller runs it off the
//! request path, so its timing says nothing either); a reset applies the
//! password rules (history included), revokes every session and refresh family
//! of the user, clears the address's lockout, counts the address as verified
//! (the link reached it) and mails a confirmation.

use time::Duration;

use crate::account::normalize_email;
use crate::audit::EventKind;
use minijinja::context;

use crate::mail::templates::Template;
use crate::mail::{hash_link_token, new_link_token};
use crate::password::PolicyContext;
use crate::ports::{Aftermath, NewVerification, Revocation};
use crate::session::RevokeReason;

use super::{new_event, AuthError, ClientContext, Passwords, WeakPassword};

/// Prefix of reset tokens.
pub const RESET_TOKEN_PREFIX: &str = "lk_pr_";
/// Lifetime of a reset token.
pub const RESET_TTL: Duration = Duration::minutes(30);

impl Passwords {
    /// Mails a reset link to the account of `email`, if there is an enabled one;
    /// otherwise does nothing. Never reveals which.
    pub async fn forgot_password(&self, email: &str) -> Result<(), AuthError> {
        let Some(user) = self.store.user_by_email(&normalize_email(email)).await? else {
            return Ok(());
        };
        if user.disabled_at.is_some() {
            return Ok(());
        }
        let now = self.common.now();
        let (token, token_hash) = new_link_token(RESET_TOKEN_PREFIX);
        let link = self.common.links.reset_url.replace("{token}", &token);
        let mail = self.common.compose(
            Template::PasswordReset,
            &user.email,
            super::notices::mail_name(&user),
            context! { link => link, minutes => RESET_TTL.whole_minutes() },
        )?;
        let record = NewVerification {
            token_hash,
            user_id: user.id,
            created_at: now,
            expires_at: now + RESET_TTL,
        };
        self.store.issue_password_reset(&record, &mail).await?;
        Ok(())
    }

    /// Sets a new password with a reset token. `InvalidToken` for an unknown,
    /// used, expired or superseded token; the policy's objections otherwise
    /// (the token stays usable until it succeeds).
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
        client: &ClientContext,
    ) -> Result<Result<(), WeakPassword>, AuthError> {
        let token_hash = hash_link_token(token);
        let now = self.common.now();
        let user_id = self
            .store
            .password_reset_user(&token_hash, now)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        let context = PolicyContext {
            email: &user.email,
            name: user.name.as_deref(),
            service: &self.common.links.product,
        };
        if let Err(weak) = self
            .check_new_password(new_password, &context, Some((user.id, &user.password_hash)))
            .await?
        {
            return Ok(Err(weak));
        }
        let hash = self
            .hasher
            .hash(new_password)
            .await
            .map_err(AuthError::Password)?;
        let keep = self.policy.history.saturating_sub(1);
        // Every session, the event and the confirmation go in the reset's own
        // transaction: no crash can leave the new password with old sessions.
        let event = new_event(user.id, EventKind::PasswordReset, None, client, now);
        let notice = self.common.notice_mail(
            self.common.links.notify.password_changed,
            Template::PasswordChanged,
            &user,
            Some(client),
            context! { reset => true },
        );
        let after = Aftermath {
            revoke: Some(Revocation {
                keep: None,
                reason: RevokeReason::PasswordReset,
            }),
            event: Some(&event),
            mail: notice.as_ref(),
            recovery_codes: None,
        };
        if self
            .store
            .complete_password_reset(&token_hash, &hash, now, keep, &after)
            .await?
            .is_none()
        {
            return Err(AuthError::InvalidToken);
        }
        self.common.cache.forget_user(user.id);
        self.common.cache.forget_profile(user.id);
        self.attempts
            .clear(&self.attempts.policy.identifier_key(&user.email_normalized))
            .await?;
        tracing::info!("password reset; every session revoked");
        Ok(Ok(()))
    }
}
