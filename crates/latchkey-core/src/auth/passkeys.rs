//! The passkey service: registration and management by the signed-in user,
//! and the ceremonies and assertion check the sign-in service uses
//! (`passkey_login.rs`).
//!
//! Guarantees: a ceremony is single use and bound to the user (and kind) that
//! started it; registration excludes the user's existing credentials; an
//! assertion whose signature counter does not grow is refused and recorded as a
//! possible clone; adding the first factor creates recovery codes, removing the
//! last one deletes them; every change revokes other sessions and mails the user.

use std::sync::Arc;

use time::Duration;
use uuid::Uuid;
use webauthn_rs::prelude::{
    CredentialID, Passkey, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    WebauthnError,
};
use zeroize::Zeroizing;

use crate::audit::EventKind;
use crate::mfa::passkey::{
    passkey_flags, Ceremony, CeremonyKind, PasskeyRecord, PasskeyService, CEREMONY_TTL,
};
use crate::mfa::recovery::RecoveryHasher;
use crate::ports::{Aftermath, PasskeyPorts};

use super::common::Common;
use super::{AuthError, ClientContext, LockoutPolicy, Principal};

/// Passkeys of signed-in users. Guarantees: registration needs a recent
/// sign-in; a ceremony is single use and bound to its owner and kind.
#[derive(Clone)]
pub struct Passkeys {
    pub(crate) store: Arc<dyn PasskeyPorts>,
    /// The WebAuthn relying party; `None` when `public_url` has no domain name.
    pub(crate) service: Option<PasskeyService>,
    pub(crate) recovery: RecoveryHasher,
    /// Keys the owner of a passwordless ceremony (the client's network).
    pub(crate) lockout: LockoutPolicy,
    pub(crate) privileged_max_age: Option<Duration>,
    pub(crate) common: Common,
}

impl std::fmt::Debug for Passkeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passkeys")
            .field("available", &self.service.is_some())
            .finish_non_exhaustive()
    }
}

/// A registration just finished.
#[derive(Debug)]
pub struct RegisteredPasskey {
    /// The stored passkey.
    pub passkey: PasskeyRecord,
    /// Recovery codes, when this passkey is the account's first factor.
    pub recovery_codes: Option<Vec<Zeroizing<String>>>,
}

pub(crate) fn internal(e: impl std::error::Error + Send + Sync + 'static) -> AuthError {
    AuthError::Store(crate::ports::StoreError::Internal(Box::new(e)))
}

/// Passkeys one account may hold; a registration beyond it is refused
/// (`MfaConflict`) when it starts, and again, race-free, when it is stored.
pub const MAX_PASSKEYS: usize = 20;

/// Open ceremonies one owner (a user and kind, or a client address for
/// passwordless sign-in) keeps; starting another drops its oldest.
pub const MAX_OPEN_CEREMONIES: u32 = 5;

impl Passkeys {
    /// The relying party, or `PasskeysUnavailable`.
    pub(crate) fn passkey_service(&self) -> Result<&PasskeyService, AuthError> {
        self.service.as_ref().ok_or(AuthError::PasskeysUnavailable)
    }

    /// Takes a ceremony of `kind` for `user` (or any user when `None`) that has
    /// not expired; anything else is `InvalidToken`.
    pub(crate) async fn take_ceremony(
        &self,
        id: Uuid,
        kind: CeremonyKind,
        user: Option<Uuid>,
    ) -> Result<Ceremony, AuthError> {
        let ceremony = self
            .store
            .take_ceremony(id)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        let owner_ok = user.is_none_or(|u| ceremony.user_id == Some(u));
        if ceremony.kind != kind || !owner_ok || ceremony.expires_at <= self.common.now() {
            return Err(AuthError::InvalidToken);
        }
        Ok(ceremony)
    }

    /// Stores a ceremony of `kind` for `user_id` (a passwordless sign-in:
    /// for the client's address), keeping only the owner's
    /// [`MAX_OPEN_CEREMONIES`] newest open ones.
    pub(crate) async fn store_ceremony(
        &self,
        id: Uuid,
        kind: CeremonyKind,
        user_id: Option<Uuid>,
        client: &ClientContext,
        state: &impl serde::Serialize,
        name: Option<String>,
    ) -> Result<(), AuthError> {
        let now = self.common.now();
        let owner = match (user_id, client.network.as_deref()) {
            (Some(user), _) => format!("{}:{user}", kind.as_str()),
            // Per client network: one subscriber's /64 is one client, and
            // rotating addresses inside it opens no more.
            (None, Some(network)) => {
                let key = self.lockout.client_key(network);
                format!("{}:ip:{}", kind.as_str(), crate::hex::encode(&key[..16]))
            }
            // No address known: an owner of its own, never a bucket shared by
            // every such client (whose ceremonies would evict each other).
            (None, None) => format!("{}:id:{id}", kind.as_str()),
        };
        let ceremony = Ceremony {
            id,
            user_id,
            kind,
            state_json: serde_json::to_string(state).map_err(internal)?,
            name,
            created_at: now,
            expires_at: now + CEREMONY_TTL,
            owner,
        };
        Ok(self
            .store
            .create_ceremony(&ceremony, MAX_OPEN_CEREMONIES)
            .await?)
    }

    /// Starts registering a passkey; returns the `challenge_id` and the options
    /// for `navigator.credentials.create()`. `SignInAgain` when the session
    /// signed in too long ago.
    pub async fn start_passkey_registration(
        &self,
        principal: &Principal,
        name: Option<String>,
    ) -> Result<(Uuid, serde_json::Value), AuthError> {
        let service = self.passkey_service()?;
        principal.require_recent_sign_in(self.privileged_max_age, self.common.now())?;
        let user = self
            .store
            .user_by_id(principal.user_id)
            .await?
            .ok_or(AuthError::Unauthorized)?;
        let existing: Vec<CredentialID> = self
            .store
            .passkeys(user.id)
            .await?
            .into_iter()
            .map(|p| CredentialID::from(p.credential_id))
            .collect();
        if existing.len() >= MAX_PASSKEYS {
            return Err(AuthError::MfaConflict);
        }
        let display = user.name.clone().unwrap_or_else(|| user.email.clone());
        let (options, state) = service
            .webauthn
            .start_passkey_registration(user.id, &user.email, &display, Some(existing))
            .map_err(internal)?;
        let id = Uuid::now_v7();
        self.store_ceremony(
            id,
            CeremonyKind::Register,
            Some(user.id),
            &ClientContext::default(),
            &state,
            name,
        )
        .await?;
        Ok((id, serde_json::to_value(options).map_err(internal)?))
    }

    /// Verifies the authenticator's answer and stores the passkey.
    /// `SignInAgain` when the session signed in too long ago.
    pub async fn finish_passkey_registration(
        &self,
        principal: &Principal,
        challenge_id: Uuid,
        credential: serde_json::Value,
        client: &ClientContext,
    ) -> Result<RegisteredPasskey, AuthError> {
        let service = self.passkey_service()?;
        principal.require_recent_sign_in(self.privileged_max_age, self.common.now())?;
        let ceremony = self
            .take_ceremony(
                challenge_id,
                CeremonyKind::Register,
                Some(principal.user_id),
            )
            .await?;
        let state: PasskeyRegistration =
            serde_json::from_str(&ceremony.state_json).map_err(internal)?;
        let credential: RegisterPublicKeyCredential =
            serde_json::from_value(credential).map_err(|_| AuthError::PasskeyRejected)?;
        let passkey = service
            .webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(|e| {
                tracing::info!(error = %e, "passkey registration refused");
                AuthError::PasskeyRejected
            })?;
        let user = self
            .store
            .user_by_id(principal.user_id)
            .await?
            .ok_or(AuthError::Unauthorized)?;
        let first_factor = !user.mfa.enabled();
        let json = serde_json::to_string(&passkey).map_err(internal)?;
        let (counter, backup_eligible, backup_state) = passkey_flags(&json);
        let now = self.common.now();
        let record = PasskeyRecord {
            id: Uuid::now_v7(),
            user_id: user.id,
            credential_id: passkey.cred_id().to_vec(),
            name: ceremony.name.unwrap_or_else(|| "Passkey".into()),
            passkey_json: json,
            counter,
            backup_eligible,
            backup_state,
            created_at: now,
            last_used_at: None,
        };
        // The first factor brings recovery codes; they, the other sessions'
        // revocation, the event and the notice share the passkey's transaction.
        let generated = first_factor.then(|| self.recovery.generate(user.id));
        let change = self
            .common
            .factor_change(&user, principal, EventKind::MfaEnabled, client);
        let after = Aftermath {
            recovery_codes: generated.as_ref().map(|(_, hashes)| hashes.as_slice()),
            ..change.aftermath()
        };
        self.store
            .insert_passkey(
                &record,
                &after,
                u32::try_from(MAX_PASSKEYS).unwrap_or(u32::MAX),
            )
            .await
            .map_err(|e| match e {
                crate::ports::StoreError::Conflict {
                    constraint: crate::ports::PASSKEY_LIMIT,
                } => AuthError::MfaConflict,
                crate::ports::StoreError::Conflict { .. } => AuthError::PasskeyRejected,
                other => other.into(),
            })?;
        self.common.factor_changed(user.id, EventKind::MfaEnabled);
        Ok(RegisteredPasskey {
            passkey: record,
            recovery_codes: generated.map(|(codes, _)| codes),
        })
    }

    /// The user's passkeys.
    pub async fn passkeys(&self, principal: &Principal) -> Result<Vec<PasskeyRecord>, AuthError> {
        Ok(self.store.passkeys(principal.user_id).await?)
    }

    /// Renames one of the user's passkeys (`NotFound` for anyone else's).
    pub async fn rename_passkey(
        &self,
        principal: &Principal,
        id: Uuid,
        name: &str,
    ) -> Result<(), AuthError> {
        if self
            .store
            .rename_passkey(principal.user_id, id, name)
            .await?
        {
            Ok(())
        } else {
            Err(AuthError::NotFound)
        }
    }

    /// Removes one of the user's passkeys; the recovery codes go with the last
    /// factor. `SignInAgain` when the session signed in too long ago (no
    /// password is asked, so a stolen session cannot strip the owner's keys).
    pub async fn delete_passkey(
        &self,
        principal: &Principal,
        id: Uuid,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        principal.require_recent_sign_in(self.privileged_max_age, self.common.now())?;
        let user = self
            .store
            .user_by_id(principal.user_id)
            .await?
            .ok_or(AuthError::Unauthorized)?;
        // The store takes the recovery codes with the last factor, in the same
        // transaction as the passkey, the other sessions, the event and the
        // notice.
        let change = self
            .common
            .factor_change(&user, principal, EventKind::MfaDisabled, client);
        if !self
            .store
            .delete_passkey(user.id, id, self.common.now(), &change.aftermath())
            .await?
        {
            return Err(AuthError::NotFound);
        }
        self.common.factor_changed(user.id, EventKind::MfaDisabled);
        Ok(())
    }

    pub(crate) async fn parsed_passkeys(
        &self,
        user_id: Uuid,
    ) -> Result<Vec<(PasskeyRecord, Passkey)>, AuthError> {
        let records = self.store.passkeys(user_id).await?;
        Ok(records
            .into_iter()
            .filter_map(|r| {
                let parsed = serde_json::from_str::<Passkey>(&r.passkey_json).ok()?;
                Some((r, parsed))
            })
            .collect())
    }

    /// Runs `finish` and, on success, records the use on the stored passkey.
    /// Returns the `amr` value of the key (`swk` for a synced passkey, `hwk`
    /// otherwise), or `None` when the assertion is wrong.
    pub(crate) async fn verify_assertion(
        &self,
        service: &PasskeyService,
        user_id: Uuid,
        credential: &PublicKeyCredential,
        client: &ClientContext,
        finish: impl FnOnce(
            &webauthn_rs::prelude::Webauthn,
            &PublicKeyCredential,
        )
            -> Result<webauthn_rs::prelude::AuthenticationResult, WebauthnError>,
    ) -> Result<Option<&'static str>, AuthError> {
        let result = match finish(&service.webauthn, credential) {
            Ok(result) => result,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                tracing::warn!(
                    "passkey signature counter went backwards: possible cloned authenticator"
                );
                self.common
                    .event(user_id, EventKind::PasskeyCloneSuspected, None, client)
                    .await;
                return Ok(None);
            }
            Err(e) => {
                tracing::info!(error = %e, "passkey assertion refused");
                return Ok(None);
            }
        };
        for (record, mut passkey) in self.parsed_passkeys(user_id).await? {
            if passkey.update_credential(&result).is_some() {
                let json = serde_json::to_string(&passkey).map_err(internal)?;
                self.store
                    .record_passkey_use(record.id, &json, self.common.now())
                    .await?;
                let synced = result.backup_eligible() || record.backup_eligible;
                return Ok(Some(if synced { "swk" } else { "hwk" }));
            }
        }
        // Verified against the state, but the key is gone (deleted meanwhile).
        Ok(None)
    }
}
