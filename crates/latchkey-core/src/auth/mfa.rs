//! The MFA service: TOTP enrolment and recovery codes (the second sign-in
//! step is `mfa_login.rs`, on the sign-in service).
//!
//! Guarantees: TOTP seeds are sealed at rest with the row id as associated data;
//! a code (TOTP step or recovery code) is accepted at most once, enforced by a
//! conditional write; every answer spends one of the challenge's 5 attempts,
//! taken in one conditional write before the answer is checked (so parallel
//! answers cannot exceed the limit), and wrong codes count against the
//! account's lockout key; a challenge dies when the password changes after it
//! was issued; enabling or disabling a factor revokes the
//! user's other sessions, records an event and mails the user.

use std::sync::Arc;

use minijinja::context;
use time::Duration;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::account::User;
use crate::audit::EventKind;
use crate::mail::templates::Template;
use crate::mfa::recovery::RecoveryHasher;
use crate::mfa::{totp, MfaSummary, TotpRecord};
use crate::ports::{Aftermath, MfaPorts, Revocation, StoreError};
use crate::seal::Keyring;
use crate::session::RevokeReason;

use super::common::Common;
use super::{new_event, AuthError, ClientContext, Passwords, Principal};

/// TOTP and recovery codes of signed-in users. Guarantees: changes need a
/// recent sign-in or the password; each revokes the user's other sessions,
/// records an event and mails the user, in the factor's own transaction.
#[derive(Clone)]
pub struct Mfa {
    pub(crate) store: Arc<dyn MfaPorts>,
    /// Seals TOTP seeds (purpose [`crate::mfa::TOTP_SEAL_PURPOSE`]).
    pub(crate) seal: Arc<Keyring>,
    pub(crate) recovery: RecoveryHasher,
    /// Issuer in `otpauth://` URIs (the product name).
    pub(crate) issuer: String,
    /// Confirms the password before a factor is removed.
    pub(crate) passwords: Passwords,
    pub(crate) privileged_max_age: Option<Duration>,
    pub(crate) common: Common,
}

impl std::fmt::Debug for Mfa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mfa").finish_non_exhaustive()
    }
}

/// Opens the sealed seed of `record`; a seed sealed under a key the ring
/// does not hold, or moved from another row, is an internal error (logged
/// with the reason, never guessed around).
pub(crate) fn open_seed(
    seal: &Keyring,
    record: &TotpRecord,
) -> Result<Zeroizing<Vec<u8>>, AuthError> {
    seal.open(&record.secret_sealed, record.id.as_bytes())
        .map_err(|e| {
            tracing::error!(error = %e, totp_id = %record.id, "TOTP seed cannot be opened");
            AuthError::Store(StoreError::Internal(Box::new(e)))
        })
}

/// A started TOTP enrolment, shown once.
pub struct TotpEnrolment {
    /// The seed in base32, for manual entry.
    pub secret: Zeroizing<String>,
    /// `otpauth://` URI for the QR code.
    pub otpauth_uri: Zeroizing<String>,
}

impl Mfa {
    /// The first key id stored TOTP seeds were sealed with that the ring does
    /// not hold (a changed master key would shut every enrolled user out), or
    /// `None`.
    pub async fn missing_seal_key(&self) -> Result<Option<String>, StoreError> {
        let ids = self.store.totp_key_ids().await?;
        Ok(ids.into_iter().find(|id| !self.seal.knows(id)))
    }

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
        principal.require_recent_sign_in(self.privileged_max_age, self.common.now())?;
        let user = self.current_user(principal).await?;
        let secret = totp::new_secret();
        let id = Uuid::now_v7();
        let record = TotpRecord {
            id,
            user_id: user.id,
            secret_sealed: self.seal.seal(&secret, id.as_bytes()),
            key_id: self.seal.current_key_id(),
            created_at: self.common.now(),
            confirmed_at: None,
            last_step: None,
        };
        if !self.store.put_pending_totp(&record).await? {
            return Err(AuthError::MfaConflict);
        }
        Ok(TotpEnrolment {
            secret: Zeroizing::new(crate::mfa::base32::encode(&secret)),
            otpauth_uri: Zeroizing::new(totp::otpauth_uri(&secret, &self.issuer, &user.email)),
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
        principal.require_recent_sign_in(self.privileged_max_age, self.common.now())?;
        let user = self.current_user(principal).await?;
        let record = match self.store.totp(user.id).await? {
            Some(r) if r.confirmed_at.is_none() => r,
            _ => return Err(AuthError::MfaConflict),
        };
        let seed = open_seed(&self.seal, &record)?;
        let now = self.common.now();
        let step = totp::matching_step(&seed, code, totp::step_at(now.unix_timestamp()), None)
            .ok_or(AuthError::InvalidMfaCode)?;
        let (codes, hashes) = self.recovery.generate(user.id);
        let change = self
            .common
            .factor_change(&user, principal, EventKind::MfaEnabled, client);
        if !self
            .store
            .confirm_totp(user.id, record.id, step, &hashes, now, &change.aftermath())
            .await?
        {
            return Err(AuthError::MfaConflict);
        }
        self.common.factor_changed(user.id, EventKind::MfaEnabled);
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
        self.passwords.confirm_password(&user, password).await?;
        // The store writes the change's aftermath only when the removed factor
        // was confirmed (a pending enrolment changes no factor), and takes the
        // recovery codes when no factor is left.
        let change = self
            .common
            .factor_change(&user, principal, EventKind::MfaDisabled, client);
        if !self
            .store
            .delete_totp(user.id, self.common.now(), &change.aftermath())
            .await?
        {
            return Err(AuthError::NotFound);
        }
        self.common.factor_changed(user.id, EventKind::MfaDisabled);
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
        self.passwords.confirm_password(&user, password).await?;
        if !self.store.mfa_summary(user.id).await?.enabled() {
            return Err(AuthError::MfaConflict);
        }
        let (codes, hashes) = self.recovery.generate(user.id);
        self.store
            .replace_recovery_codes(user.id, &hashes, self.common.now())
            .await?;
        self.common.cache.forget_profile(user.id);
        self.common
            .event(
                user.id,
                EventKind::RecoveryCodesRegenerated,
                Some(principal.session_id),
                client,
            )
            .await;
        Ok(codes)
    }
}

impl Common {
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
            self.now(),
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
