//! `signup`, `verify_email`, `resend_verification`.

use time::Duration;
use uuid::Uuid;

use crate::account::{normalize_email, NewUser, User};
use minijinja::context;

use crate::mail::templates::Template;
use crate::mail::{hash_link_token, new_link_token, QueuedMail};
use crate::password::PolicyContext;
use crate::ports::{NewVerification, StoreError};

use super::{Accounts, AuthError, ClientContext, Issued, WeakPassword};

/// Prefix of email verification tokens.
pub const VERIFICATION_TOKEN_PREFIX: &str = "lk_ev_";
/// How long a verification link works.
pub const VERIFICATION_TTL: Duration = Duration::hours(24);

/// What mail says, where its links point, and how it is sealed for the outbox.
#[derive(Debug, Clone)]
pub struct MailLinks {
    /// Product name shown in mail.
    pub product: String,
    /// The server's public URL (shown in mail).
    pub public_url: String,
    /// The templates every message is rendered from.
    pub templates: std::sync::Arc<crate::mail::templates::MailTemplates>,
    /// Which security notices are sent.
    pub notify: crate::mail::Notifications,
    /// Verification link with `{token}` where the token goes.
    pub verify_url: String,
    /// Password-reset link with `{token}` where the token goes.
    pub reset_url: String,
    /// Seals every composed message for the outbox.
    pub outbox: std::sync::Arc<crate::mail::OutboxSeal>,
}

/// A sign-up.
#[derive(Clone)]
pub struct SignupRequest {
    /// As typed (validated for shape by the caller).
    pub email: String,
    /// As typed.
    pub password: zeroize::Zeroizing<String>,
    /// Optional display name (validated by the caller).
    pub name: Option<String>,
}

impl std::fmt::Debug for SignupRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignupRequest").finish_non_exhaustive()
    }
}

/// What a sign-up did, as the caller may reveal it.
#[derive(Debug)]
pub enum SignupOutcome {
    /// "Check your mail": a new account got a verification link, or (enumeration
    /// protection) an existing account's owner got a notice. Indistinguishable.
    VerificationSent,
    /// Verification is off: the new account is signed in.
    SignedIn(Box<Issued>),
    /// The address is taken (only reported with enumeration protection off).
    Conflict,
}

impl Accounts {
    /// The verification link for `to`, an address not verified yet: the
    /// account's name stays out of it (whoever typed the address chose it).
    fn verification_mail(&self, to: &str, token: &str) -> Result<QueuedMail, AuthError> {
        let link = self.common.links.verify_url.replace("{token}", token);
        self.common.compose(
            Template::VerifyEmail,
            to,
            None,
            context! { link => link, hours => VERIFICATION_TTL.whole_hours() },
        )
    }

    /// Creates an account.
    ///
    /// Guarantees: the password is hashed in every path (new or taken address),
    /// so timing does not tell them apart; with enumeration protection a taken
    /// address gets the same `VerificationSent` and its owner a notice by mail; the
    /// account, its token and its mail are written in one transaction.
    pub async fn signup(
        &self,
        req: &SignupRequest,
        enumeration_protection: bool,
        client: &ClientContext,
    ) -> Result<Result<SignupOutcome, WeakPassword>, AuthError> {
        let context = PolicyContext {
            email: &req.email,
            name: req.name.as_deref(),
            service: &self.common.links.product,
        };
        if let Err(weak) = self
            .passwords
            .check_new_password(&req.password, &context, None)
            .await?
        {
            return Ok(Err(weak));
        }
        let hash = self
            .passwords
            .hasher
            .hash(&req.password)
            .await
            .map_err(AuthError::Password)?;
        let now = self.common.now();
        let user = NewUser {
            id: Uuid::now_v7(),
            email: req.email.trim().to_owned(),
            email_normalized: normalize_email(&req.email),
            name: req.name.clone(),
            password_hash: hash,
            created_at: now,
        };
        if let Some(existing) = self.store.user_by_email(&user.email_normalized).await? {
            return self.taken(&existing, enumeration_protection).await.map(Ok);
        }
        let (token_text, token_hash) = new_link_token(VERIFICATION_TOKEN_PREFIX);
        let token = NewVerification {
            token_hash,
            user_id: user.id,
            created_at: now,
            expires_at: now + VERIFICATION_TTL,
        };
        let mail = self.verification_mail(&user.email, &token_text)?;
        let require = self.require_email_verification;
        let created = self
            .store
            .create_user_with_verification(&user, require.then_some((&token, &mail)))
            .await;
        let created = match created {
            Ok(created) => created,
            Err(StoreError::Conflict { .. }) => {
                // Lost a race with another sign-up of the same address.
                let existing = self.store.user_by_email(&user.email_normalized).await?;
                return match existing {
                    Some(existing) => self.taken(&existing, enumeration_protection).await.map(Ok),
                    None => Ok(Ok(SignupOutcome::Conflict)),
                };
            }
            Err(e) => return Err(e.into()),
        };
        if require {
            return Ok(Ok(SignupOutcome::VerificationSent));
        }
        let issued = self
            .sessions
            .start_session(
                created,
                // `201` carries the tokens in its body: token mode.
                super::SessionTerms {
                    remember_me: false,
                    delivery: super::Delivery::Token,
                },
                vec!["pwd".into()],
                client,
                None,
                None,
            )
            .await?;
        Ok(Ok(SignupOutcome::SignedIn(Box::new(issued))))
    }

    async fn taken(&self, existing: &User, protection: bool) -> Result<SignupOutcome, AuthError> {
        if !protection {
            return Ok(SignupOutcome::Conflict);
        }
        let mail = self.common.compose(
            Template::SignupAttempt,
            &existing.email,
            super::notices::mail_name(existing),
            context! {},
        )?;
        self.common.store.enqueue_mail(&mail).await?;
        Ok(SignupOutcome::VerificationSent)
    }

    /// Spends a verification token; the account is verified from now on. An
    /// email-change token (`lk_ec_`) confirms the change instead.
    pub async fn verify_email(&self, token: &str) -> Result<User, AuthError> {
        if token.starts_with(super::EMAIL_CHANGE_TOKEN_PREFIX)
            && token.len() == super::EMAIL_CHANGE_TOKEN_PREFIX.len() + 43
        {
            return self.confirm_email_change(token).await;
        }
        if !token.starts_with(VERIFICATION_TOKEN_PREFIX)
            || token.len() != VERIFICATION_TOKEN_PREFIX.len() + 43
        {
            return Err(AuthError::InvalidToken);
        }
        let now = self.common.now();
        let user_id = self
            .store
            .consume_verification(&hash_link_token(token), now)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        self.common.cache.forget_profile(user_id);
        self.store
            .user_by_id(user_id)
            .await?
            .ok_or(AuthError::InvalidToken)
    }

    /// Mails a new verification link to an unverified account; does nothing
    /// (and says nothing different) for unknown or verified addresses.
    pub async fn resend_verification(&self, email: &str) -> Result<(), AuthError> {
        let Some(user) = self.store.user_by_email(&normalize_email(email)).await? else {
            return Ok(());
        };
        if user.email_verified_at.is_some() {
            return Ok(());
        }
        let now = self.common.now();
        let (text, hash) = new_link_token(VERIFICATION_TOKEN_PREFIX);
        let token = NewVerification {
            token_hash: hash,
            user_id: user.id,
            created_at: now,
            expires_at: now + VERIFICATION_TTL,
        };
        let mail = self.verification_mail(&user.email, &text)?;
        self.store.issue_verification(&token, &mail).await?;
        Ok(())
    }
}
