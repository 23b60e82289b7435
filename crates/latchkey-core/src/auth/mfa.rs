//! Second factors: TOTP enrolment, recovery codes, and the second sign-in step.
//!
//! Guarantees: TOTP seeds are sealed at rest with the row id as associated data;
//! a code (TOTP step or recovery code) is accepted at most once, enforced by a
//! conditional write; every answer spends one of the challenge's 5 attempts,
//! taken in one conditional write before the answer is checked (so parallel
//! answers cannot exceed the limit), and wrong codes count against the
//! account's lockout key; a challenge dies when the password changes after it
//! was issued; enabling or disabling a factor revokes the
//! user's other sessions, records an event and mails the user.

use uuid::Uuid;
use zeroize::Zeroizing;

use crate::account::User;
use crate::audit::EventKind;
use minijinja::context;

use crate::mail::templates::Template;
use crate::mfa::challenge::{MfaChallenge, MAX_ATTEMPTS, TOKEN_PREFIX, TTL};
use crate::mfa::{totp, MfaSummary, TotpRecord};
use crate::ports::{Aftermath, Revocation};
use crate::session::RevokeReason;

use super::{
    new_event, Auth, AuthError, ClientContext, Issued, LoginRequest, MfaPending, Principal,
};

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

/// A started TOTP enrolment, shown once.
pub struct TotpEnrolment {
    /// The seed in base32, for manual entry.
    pub secret: Zeroizing<String>,
    /// `otpauth://` URI for the QR code.
    pub otpauth_uri: Zeroizing<String>,
}

impl Auth {
    async fn current_user(&self, principal: &Principal) -> Result<User, AuthError> {
        self.store
            .user_by_id(principal.user_id)
            .await?
            .ok_or(AuthError::Unauthorized)
    }

    /// The user's factors.
    pub async fn mfa_summary(&self, user_id: Uuid) -> Result<MfaSummary, AuthError> {
        Ok(self.store.mfa_summary(user_id).await?)
    }

    /// Starts (or restarts) a TOTP enrolment with a fresh seed; `MfaConflict`
    /// when TOTP is already enabled, `SignInAgain` when the session signed in
    /// too long ago.
    pub async fn start_totp(&self, principal: &Principal) -> Result<TotpEnrolment, AuthError> {
        self.require_recent_sign_in(principal)?;
        let user = self.current_user(principal).await?;
        let secret = totp::new_secret();
        let id = Uuid::now_v7();
        let record = TotpRecord {
            id,
            user_id: user.id,
            secret_sealed: self.mfa.seal.seal(&secret, id.as_bytes()),
            key_id: self.mfa.seal.current_key_id(),
            created_at: self.clock.now(),
            confirmed_at: None,
            last_step: None,
        };
        if !self.store.put_pending_totp(&record).await? {
            return Err(AuthError::MfaConflict);
        }
        Ok(TotpEnrolment {
            secret: Zeroizing::new(crate::mfa::base32::encode(&secret)),
            otpauth_uri: Zeroizing::new(totp::otpauth_uri(&secret, &self.mfa.issuer, &user.email)),
        })
    }

    /// Opens the sealed seed of `record`; a seed sealed under a key the ring
    /// does not hold, or moved from another row, is an internal error (logged
    /// with the reason, never guessed around).
    fn open_seed(&self, record: &TotpRecord) -> Result<Zeroizing<Vec<u8>>, AuthError> {
        self.mfa
            .seal
            .open(&record.secret_sealed, record.id.as_bytes())
            .map_err(|e| {
                tracing::error!(error = %e, totp_id = %record.id, "TOTP seed cannot be opened");
                AuthError::Store(crate::ports::StoreError::Internal(Box::new(e)))
            })
    }

    /// Confirms the pending enrolment with a valid code: TOTP becomes active,
    /// ten recovery codes replace any old ones (returned once), other sessions
    /// are revoked and the user is mailed. `SignInAgain` when the session
    /// signed in too long ago.
    pub async fn confirm_totp(
        &self,
        principal: &Principal,
        code: &str,
        client: &ClientContext,
    ) -> Result<Vec<Zeroizing<String>>, AuthError> {
        self.require_recent_sign_in(principal)?;
        let user = self.current_user(principal).await?;
        let record = match self.store.totp(user.id).await? {
            Some(r) if r.confirmed_at.is_none() => r,
            _ => return Err(AuthError::MfaConflict),
        };
        let seed = self.open_seed(&record)?;
        let now = self.clock.now();
        let step = totp::matching_step(&seed, code, totp::step_at(now.unix_timestamp()), None)
            .ok_or(AuthError::InvalidMfaCode)?;
        let (codes, hashes) = self.mfa.recovery.generate(user.id);
        let change = self.factor_change(&user, principal, EventKind::MfaEnabled, client);
        if !self
            .store
            .confirm_totp(user.id, record.id, step, &hashes, now, &change.aftermath())
            .await?
        {
            return Err(AuthError::MfaConflict);
        }
        self.factor_changed(user.id, EventKind::MfaEnabled);
        Ok(codes)
    }

    /// Removes TOTP (and the recovery codes, which protect nothing without a
    /// factor) after checking the password.
    pub async fn disable_totp(
        &self,
        principal: &Principal,
        password: &str,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        let user = self.current_user(principal).await?;
        self.confirm_password(&user, password).await?;
        // The store writes the change's aftermath only when the removed factor
        // was confirmed (a pending enrolment changes no factor), and takes the
        // recovery codes when no factor is left.
        let change = self.factor_change(&user, principal, EventKind::MfaDisabled, client);
        if !self
            .store
            .delete_totp(user.id, self.clock.now(), &change.aftermath())
            .await?
        {
            return Err(AuthError::NotFound);
        }
        self.factor_changed(user.id, EventKind::MfaDisabled);
        Ok(())
    }

    /// Replaces the recovery codes (old ones stop working) after checking the
    /// password; `MfaConflict` without an enabled factor.
    pub async fn regenerate_recovery_codes(
        &self,
        principal: &Principal,
        password: &str,
        client: &ClientContext,
    ) -> Result<Vec<Zeroizing<String>>, AuthError> {
        let user = self.current_user(principal).await?;
        self.confirm_password(&user, password).await?;
        if !self.store.mfa_summary(user.id).await?.enabled() {
            return Err(AuthError::MfaConflict);
        }
        let (codes, hashes) = self.mfa.recovery.generate(user.id);
        self.store
            .replace_recovery_codes(user.id, &hashes, self.clock.now())
            .await?;
        self.cache.forget_profile(user.id);
        self.event(
            user.id,
            EventKind::RecoveryCodesRegenerated,
            Some(principal.session_id),
            client,
        )
        .await;
        Ok(codes)
    }

    /// What enabling or disabling a factor brings with it, for the store to
    /// write in the factor's own transaction: the other sessions revoked, the
    /// event, the notice.
    pub(crate) fn factor_change(
        &self,
        user: &User,
        principal: &Principal,
        kind: EventKind,
        client: &ClientContext,
    ) -> FactorChange {
        let event = new_event(
            user.id,
            kind,
            Some(principal.session_id),
            client,
            self.clock.now(),
        );
        let notice = self.notice_mail(
            self.links.notify.mfa_changed,
            Template::MfaChanged,
            user,
            Some(client),
            context! { enabled => kind == EventKind::MfaEnabled },
        );
        FactorChange {
            keep: principal.session_id,
            event,
            notice,
        }
    }

    /// After the store wrote a factor change: cached sessions and profile
    /// forgotten.
    pub(crate) fn factor_changed(&self, user_id: Uuid, kind: EventKind) {
        self.cache.forget_user(user_id);
        self.cache.forget_profile(user_id);
        tracing::info!(
            kind = kind.as_str(),
            "second factor changed; other sessions revoked"
        );
    }

    /// Creates the challenge returned after a correct password.
    pub(crate) async fn start_mfa_challenge(
        &self,
        user: &User,
        key: &[u8; 32],
        req: &LoginRequest,
        summary: &MfaSummary,
    ) -> Result<MfaPending, AuthError> {
        let (token, token_hash) = crate::mail::new_link_token(TOKEN_PREFIX);
        let now = self.clock.now();
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
        let now = self.clock.now();
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
            .reserve_attempt(&challenge.lockout_key, Some(&user), client)
            .await?;
        // Spend one attempt before looking at the answer, in one conditional
        // write: however many answers race on one token, at most
        // MAX_ATTEMPTS are ever checked.
        if !self
            .store
            .take_mfa_attempt(challenge.id, now, MAX_ATTEMPTS)
            .await?
        {
            self.attempt_released(&attempt).await?;
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
            self.event(user.id, EventKind::MfaFailed, None, client)
                .await;
            self.attempt_failed(&attempt, Some(&user), client).await?;
            metrics::counter!("latchkey_login_attempts_total", "result" => "failure").increment(1);
            return Err(AuthError::InvalidMfaCode);
        };
        if user.disabled_at.is_some() {
            self.attempt_released(&attempt).await?;
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
        let seed = self.open_seed(&record)?;
        let now = self.clock.now();
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
        let Some(hash) = self.mfa.recovery.hash(user.id, code) else {
            return Ok(None);
        };
        // The event and the notice are written with the code's use, in one
        // transaction; the notice counts the codes left after this one.
        let now = self.clock.now();
        let left = self
            .store
            .mfa_summary(user.id)
            .await?
            .recovery_codes_left
            .saturating_sub(1);
        let event = new_event(user.id, EventKind::RecoveryCodeUsed, None, client, now);
        let notice = self.notice_mail(
            self.links.notify.recovery_code_used,
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
            .consume_mfa_challenge(challenge.id, self.clock.now(), MAX_ATTEMPTS + 1)
            .await?
        {
            Ok(())
        } else {
            Err(AuthError::InvalidToken)
        }
    }
}

/// A factor change's event and notice, and the session that made it (which
/// stays signed in).
pub(crate) struct FactorChange {
    keep: Uuid,
    event: crate::audit::SecurityEvent,
    notice: Option<crate::mail::QueuedMail>,
}

impl FactorChange {
    /// The store's part: revoke every other session, record, queue.
    pub(crate) fn aftermath(&self) -> Aftermath<'_> {
        Aftermath {
            revoke: Some(Revocation {
                keep: Some(self.keep),
                reason: RevokeReason::MfaChanged,
            }),
            event: Some(&self.event),
            mail: self.notice.as_ref(),
            recovery_codes: None,
        }
    }
}
