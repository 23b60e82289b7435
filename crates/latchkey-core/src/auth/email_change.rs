//! Email change: the signed-in user asks for a new address with their
//! password; the address changes only when the link mailed to it is followed.
//!
//! Guarantees: the password is checked first (a wrong one counts as a failed
//! sign-in); the link is 256 random bits stored as its SHA-256, valid 24 hours,
//! single use, and only the newest request of a user works; the current address
//! is told of the request and, once confirmed, of the change; uniqueness is
//! decided again at confirmation by the database's unique constraint, so two
//! accounts racing for one address cannot both get it; with enumeration
//! protection a taken address gets the same answer as a free one (and no mail).

use minijinja::context;
use time::Duration;
use zeroize::Zeroizing;

use crate::account::{normalize_email, User};
use crate::audit::EventKind;
use crate::mail::templates::Template;
use crate::mail::{hash_link_token, new_link_token};
use crate::ports::{NewEmailChange, NewVerification, StoreError};

use super::{Accounts, AuthError, ClientContext, Principal};

/// Prefix of email-change tokens (confirmed at `POST /v1/email/verify`).
pub const EMAIL_CHANGE_TOKEN_PREFIX: &str = "lk_ec_";
/// How long an email-change link works.
pub const EMAIL_CHANGE_TTL: Duration = Duration::hours(24);

/// A request for a new address.
pub struct EmailChangeRequest {
    /// The new address as typed (validated for shape by the caller).
    pub new_email: String,
    /// The current password.
    pub password: Zeroizing<String>,
}

impl std::fmt::Debug for EmailChangeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailChangeRequest").finish_non_exhaustive()
    }
}

impl Accounts {
    /// Checks the password and mails a confirmation link to the new address
    /// (and a notice to the current one), in one transaction with the token.
    /// `Unchanged` for the current address as it is stored (a change of case
    /// only is allowed); `Conflict` for a taken address only without
    /// enumeration protection.
    pub async fn request_email_change(
        &self,
        principal: &Principal,
        req: &EmailChangeRequest,
        enumeration_protection: bool,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        let user = self
            .passwords
            .signed_in_user_with_password(principal, &req.password)
            .await?;
        let now = self.common.now();
        let new_email = req.new_email.trim().to_owned();
        if new_email == user.email {
            return Err(AuthError::Unchanged);
        }
        let normalized = normalize_email(&new_email);
        let address_taken = match self.store.user_by_email(&normalized).await? {
            Some(other) => other.id != user.id,
            None => false,
        };
        if address_taken && !enumeration_protection {
            return Err(AuthError::Conflict);
        }
        let notice = self.common.compose(
            Template::EmailChangeRequested,
            &user.email,
            super::notices::mail_name(&user),
            context! { new_email => &new_email },
        )?;
        let (token, token_hash) = new_link_token(EMAIL_CHANGE_TOKEN_PREFIX);
        let mut mails = vec![notice];
        if !address_taken {
            mails.push(self.common.compose(
                Template::EmailChangeVerify,
                &new_email,
                // Not verified yet: no name in mail to it (it could be anyone's).
                None,
                context! {
                    new_email => &new_email,
                    link => self.common.links.verify_url.replace("{token}", &token),
                    hours => EMAIL_CHANGE_TTL.whole_hours(),
                },
            )?);
        }
        // A taken address still gets a (never mailed) token stored, so both
        // paths do the same writes.
        let change = NewEmailChange {
            token: NewVerification {
                token_hash,
                user_id: user.id,
                created_at: now,
                expires_at: now + EMAIL_CHANGE_TTL,
            },
            new_email,
            new_email_normalized: normalized,
            security_stamp: user.security_stamp,
            session_id: principal.session_id,
        };
        if !self.store.issue_email_change(&change, &mails, now).await? {
            // The session ended (or the account was recovered) meanwhile.
            return Err(AuthError::Unauthorized);
        }
        self.common
            .event(
                user.id,
                EventKind::EmailChangeRequested,
                Some(principal.session_id),
                client,
            )
            .await;
        Ok(())
    }

    /// Spends an email-change token: the account gets the new address,
    /// verified, and the old address is told. `InvalidToken` for an unknown,
    /// used, expired or superseded token; `Conflict` when another account took
    /// the address since the request (the token stays unused).
    pub(crate) async fn confirm_email_change(&self, token: &str) -> Result<User, AuthError> {
        let token_hash = hash_link_token(token);
        let now = self.common.now();
        let pending = self
            .store
            .pending_email_change(&token_hash, now)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        let user = self
            .store
            .user_by_id(pending.user_id)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        let notice = if self.common.links.notify.email_changed {
            Some(self.common.compose(
                Template::EmailChanged,
                &user.email,
                super::notices::mail_name(&user),
                context! { new_email => &pending.new_email },
            )?)
        } else {
            None
        };
        let changed = match self
            .store
            .complete_email_change(&token_hash, now, notice.as_ref())
            .await
        {
            Ok(changed) => changed,
            Err(StoreError::Conflict { .. }) => return Err(AuthError::Conflict),
            Err(e) => return Err(e.into()),
        };
        let user_id = changed.ok_or(AuthError::InvalidToken)?;
        self.common.cache.forget_profile(user_id);
        tracing::info!("email address changed");
        self.common
            .event(
                user_id,
                EventKind::EmailChanged,
                None,
                &ClientContext::default(),
            )
            .await;
        self.store
            .user_by_id(user_id)
            .await?
            .ok_or(AuthError::InvalidToken)
    }
}
