//! The second sign-in step: the challenge a correct password returns, and
//! its answer by TOTP, recovery code or passkey.
//!
//! Guarantees: a code (TOTP step or recovery code) is accepted at most once,
//! enforced by a conditional write; every answer spends one of the
//! challenge's 5 attempts, taken in one conditional write before the answer
//! is checked (so parallel answers cannot exceed the limit), and wrong codes
//! count against the account's lockout key; a challenge dies when the
//! password or a factor changes after it was issued.

use minijinja::context;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::account::User;
use crate::audit::EventKind;
use crate::mail::templates::Template;
use crate::mfa::challenge::{MfaChallenge, MAX_ATTEMPTS, TOKEN_PREFIX, TTL};
use crate::mfa::{totp, MfaSummary};
use crate::ports::Aftermath;

use super::mfa::open_seed;
use super::{new_event, AuthError, ClientContext, Issued, LoginRequest, MfaPending, SignIn};
/// A second factor answering a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaMethod {
    /// A 6-digit code from an authenticator app.
    Totp,
    /// One of the user's recovery codes.
    RecoveryCode,
    /// A passkey assertion (`credential`).
    Webauthn,
}

/// `POST /v1/login/mfa`.
pub struct MfaLoginRequest {
    /// The token from the password step.
    pub mfa_token: Zeroizing<String>,
    /// Which factor answers.
    pub method: MfaMethod,
    /// The code as typed (TOTP, recovery code).
    pub code: Zeroizing<String>,
    /// The authenticator's answer (passkey).
    pub credential: Option<serde_json::Value>,
    /// Whether the request comes from an origin allowed to finish a
    /// cookie-mode sign-in: a challenge whose password step chose cookie mode
    /// is refused (`ForeignOrigin`) otherwise, before anything is consumed.
    pub cookie_origin_allowed: bool,
}

impl SignIn {
    /// Creates the challenge returned after a correct password.
    pub(crate) async fn start_mfa_challenge(
        &self,
        user: &User,
        key: &[u8; 32],
        req: &LoginRequest,
        summary: &MfaSummary,
    ) -> Result<MfaPending, AuthError> {
        let (token, token_hash) = crate::mail::new_link_token(TOKEN_PREFIX);
        let now = self.common.now();
        let challenge = MfaChallenge {
            id: Uuid::now_v7(),
            user_id: user.id,
            token_hash,
            created_at: now,
            expires_at: now + TTL,
            attempts: 0,
            remember_me: req.remember_me,
            mode: req.delivery,
            lockout_key: *key,
            security_stamp: user.security_stamp,
        };
        self.store.create_mfa_challenge(&challenge).await?;
        let mut methods = Vec::new();
        if summary.totp {
            methods.push("totp");
        }
        let webauthn = if summary.webauthn > 0 {
            self.start_passkey_mfa(user, challenge.id).await?
        } else {
            None
        };
        if webauthn.is_some() {
            methods.push("webauthn");
        }
        methods.push("recovery_code");
        Ok(MfaPending {
            mfa_token: token,
            methods,
            expires_in: TTL.whole_seconds(),
            webauthn,
        })
    }

    /// Finishes a sign-in with a second factor. Returns the tokens and the
    /// delivery mode chosen at the password step.
    ///
    /// A token that is unknown, used, expired, out of attempts, or older than
    /// the account's current password is `InvalidToken`; every answer checked
    /// costs one of the challenge's attempts (taken atomically before the
    /// check, so concurrent answers cannot exceed the limit); a wrong code is
    /// `InvalidMfaCode` and counts as a failed sign-in for lockout (a locked
    /// account answers `Locked` before any code is checked).
    pub async fn login_mfa(
        &self,
        req: &MfaLoginRequest,
        client: &ClientContext,
    ) -> Result<(Issued, super::Delivery), AuthError> {
        let hash = crate::mail::hash_link_token(&req.mfa_token);
        let challenge = self
            .store
            .mfa_challenge(&hash)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        // The password step checked the origin of a cookie-mode sign-in; the
        // second step must come from an allowed origin too, or a foreign page
        // could finish it.
        if challenge.mode == super::Delivery::Cookie && !req.cookie_origin_allowed {
            return Err(AuthError::ForeignOrigin);
        }
        let now = self.common.now();
        if challenge.expires_at <= now || challenge.attempts >= MAX_ATTEMPTS {
            return Err(AuthError::InvalidToken);
        }
        let user = self
            .store
            .user_by_id(challenge.user_id)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        if user.password_changed_at > challenge.created_at
            || user.security_stamp != challenge.security_stamp
        {
            // The challenge vouches for a password or factors that are no
            // longer the account's: changed since the password step.
            return Err(AuthError::InvalidToken);
        }
        // Counted on the sign-in's lockout key before the answer is checked.
        let attempt = self
            .attempts
            .reserve(&challenge.lockout_key, Some(&user), client)
            .await?;
        // Spend one attempt before looking at the answer, in one conditional
        // write: however many answers race on one token, at most
        // MAX_ATTEMPTS are ever checked.
        if !self
            .store
            .take_mfa_attempt(challenge.id, now, MAX_ATTEMPTS)
            .await?
        {
            self.attempts.released(&attempt).await?;
            return Err(AuthError::InvalidToken);
        }
        let amr = match req.method {
            MfaMethod::Totp => self.answer_totp(&user, &challenge, &req.code).await?,
            MfaMethod::RecoveryCode => {
                self.answer_recovery_code(&user, &challenge, &req.code, client)
                    .await?
            }
            MfaMethod::Webauthn => match &req.credential {
                Some(credential) => {
                    self.answer_passkey(&user, &challenge, credential, client)
                        .await?
                }
                None => None,
            },
        };
        let Some(amr) = amr else {
            // The attempt was spent above.
            self.common
                .event(user.id, EventKind::MfaFailed, None, client)
                .await;
            self.attempts.failed(&attempt, Some(&user), client).await?;
            metrics::counter!("latchkey_login_attempts_total", "result" => "failure").increment(1);
            return Err(AuthError::InvalidMfaCode);
        };
        if user.disabled_at.is_some() {
            self.attempts.released(&attempt).await?;
            return Err(AuthError::Disabled);
        }
        let issued = self
            .finish_sign_in(
                user,
                &attempt,
                super::SessionTerms {
                    remember_me: challenge.remember_me,
                    delivery: challenge.mode,
                },
                amr,
                client,
            )
            .await?;
        Ok((issued, challenge.mode))
    }

    /// Checks a TOTP answer; consumes the challenge and the time step when it is
    /// right. `None` when wrong.
    async fn answer_totp(
        &self,
        user: &User,
        challenge: &MfaChallenge,
        code: &str,
    ) -> Result<Option<Vec<String>>, AuthError> {
        let Some(record) = self
            .store
            .totp(user.id)
            .await?
            .filter(|r| r.confirmed_at.is_some())
        else {
            return Ok(None);
        };
        let seed = open_seed(&self.totp_seal, &record)?;
        let now = self.common.now();
        let Some(step) = totp::matching_step(
            &seed,
            code,
            totp::step_at(now.unix_timestamp()),
            record.last_step,
        ) else {
            return Ok(None);
        };
        self.consume_mfa(challenge).await?;
        if !self.store.use_totp_step(record.id, step).await? {
            // Another request used this code first: a replay.
            return Ok(None);
        }
        Ok(Some(vec!["pwd".into(), "otp".into(), "mfa".into()]))
    }

    /// Checks a recovery-code answer (consuming the code when right), then the
    /// challenge; the use is recorded and mailed. `None` when wrong.
    async fn answer_recovery_code(
        &self,
        user: &User,
        challenge: &MfaChallenge,
        code: &str,
        client: &ClientContext,
    ) -> Result<Option<Vec<String>>, AuthError> {
        let Some(hash) = self.recovery.hash(user.id, code) else {
            return Ok(None);
        };
        // The event and the notice are written with the code's use, in one
        // transaction; the notice counts the codes left after this one.
        let now = self.common.now();
        let left = self
            .store
            .mfa_summary(user.id)
            .await?
            .recovery_codes_left
            .saturating_sub(1);
        let event = new_event(user.id, EventKind::RecoveryCodeUsed, None, client, now);
        let notice = self.common.notice_mail(
            self.common.links.notify.recovery_code_used,
            Template::RecoveryCodeUsed,
            user,
            Some(client),
            context! { left => left },
        );
        let after = Aftermath {
            event: Some(&event),
            mail: notice.as_ref(),
            ..Aftermath::default()
        };
        if !self
            .store
            .use_recovery_code(user.id, &hash, now, &after)
            .await?
        {
            return Ok(None);
        }
        self.consume_mfa(challenge).await?;
        Ok(Some(vec!["pwd".into(), "mfa".into(), "rc".into()]))
    }

    /// Marks the challenge used after a right answer; `InvalidToken` when it
    /// was used, expired or spent meanwhile. The attempt of this answer was
    /// counted already (see `login_mfa`), hence the limit of one more.
    pub(crate) async fn consume_mfa(&self, challenge: &MfaChallenge) -> Result<(), AuthError> {
        if self
            .store
            .consume_mfa_challenge(challenge.id, self.common.now(), MAX_ATTEMPTS + 1)
            .await?
        {
            Ok(())
        } else {
            Err(AuthError::InvalidToken)
        }
    }
}
