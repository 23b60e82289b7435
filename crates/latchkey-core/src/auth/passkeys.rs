//! Passkeys: registration and management by the signed-in user, and their use
//! as the second step of a password sign-in.
//!
//! Guarantees: a ceremony is single use and bound to the user (and kind) that
//! started it; registration excludes the user's existing credentials; an
//! assertion whose signature counter does not grow is refused and recorded as a
//! possible clone; adding the first factor creates recovery codes, removing the
//! last one deletes them; every change revokes other sessions and mails the user.

use uuid::Uuid;
use webauthn_rs::prelude::{
    CredentialID, Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, WebauthnError,
};
use zeroize::Zeroizing;

use crate::account::User;
use crate::audit::EventKind;
use crate::mfa::challenge::MfaChallenge;
use crate::mfa::passkey::{
    passkey_flags, Ceremony, CeremonyKind, PasskeyRecord, PasskeyService, CEREMONY_TTL,
};
use crate::ports::Aftermath;

use super::{Auth, AuthError, ClientContext, Issued, Principal};

/// A registration just finished.
#[derive(Debug)]
pub struct RegisteredPasskey {
    /// The stored passkey.
    pub passkey: PasskeyRecord,
    /// Recovery codes, when this passkey is the account's first factor.
    pub recovery_codes: Option<Vec<Zeroizing<String>>>,
}

fn internal(e: impl std::error::Error + Send + Sync + 'static) -> AuthError {
    AuthError::Store(crate::ports::StoreError::Internal(Box::new(e)))
}

/// Passkeys one account may hold; a registration beyond it is refused
/// (`MfaConflict`) when it starts, and again, race-free, when it is stored.
pub const MAX_PASSKEYS: usize = 20;

/// Open ceremonies one owner (a user and kind, or a client address for
/// passwordless sign-in) keeps; starting another drops its oldest.
pub const MAX_OPEN_CEREMONIES: u32 = 5;

impl Auth {
    fn passkey_service(&self) -> Result<&PasskeyService, AuthError> {
        self.mfa
            .passkeys
            .as_ref()
            .ok_or(AuthError::PasskeysUnavailable)
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
        if ceremony.kind != kind || !owner_ok || ceremony.expires_at <= self.clock.now() {
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
        let now = self.clock.now();
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
        self.require_recent_sign_in(principal)?;
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
        self.require_recent_sign_in(principal)?;
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
        let now = self.clock.now();
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
        let generated = first_factor.then(|| self.mfa.recovery.generate(user.id));
        let change = self.factor_change(&user, principal, EventKind::MfaEnabled, client);
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
        self.factor_changed(user.id, EventKind::MfaEnabled);
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
        self.require_recent_sign_in(principal)?;
        let user = self
            .store
            .user_by_id(principal.user_id)
            .await?
            .ok_or(AuthError::Unauthorized)?;
        // The store takes the recovery codes with the last factor, in the same
        // transaction as the passkey, the other sessions, the event and the
        // notice.
        let change = self.factor_change(&user, principal, EventKind::MfaDisabled, client);
        if !self
            .store
            .delete_passkey(user.id, id, self.clock.now(), &change.aftermath())
            .await?
        {
            return Err(AuthError::NotFound);
        }
        self.factor_changed(user.id, EventKind::MfaDisabled);
        Ok(())
    }

    /// The options for `navigator.credentials.get()` in the second step of a
    /// sign-in (stored under the sign-in challenge's id).
    pub(crate) async fn start_passkey_mfa(
        &self,
        user: &User,
        challenge_id: Uuid,
    ) -> Result<Option<serde_json::Value>, AuthError> {
        let Ok(service) = self.passkey_service() else {
            return Ok(None);
        };
        let passkeys = self.parsed_passkeys(user.id).await?;
        if passkeys.is_empty() {
            return Ok(None);
        }
        let keys: Vec<Passkey> = passkeys.into_iter().map(|(_, p)| p).collect();
        let (options, state) = service
            .webauthn
            .start_passkey_authentication(&keys)
            .map_err(internal)?;
        self.store_ceremony(
            challenge_id,
            CeremonyKind::Mfa,
            Some(user.id),
            &ClientContext::default(),
            &state,
            None,
        )
        .await?;
        Ok(Some(serde_json::to_value(options).map_err(internal)?))
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

    /// Checks a passkey assertion for the second step; `None` when wrong.
    pub(crate) async fn answer_passkey(
        &self,
        user: &User,
        challenge: &MfaChallenge,
        credential: &serde_json::Value,
        client: &ClientContext,
    ) -> Result<Option<Vec<String>>, AuthError> {
        let service = self.passkey_service()?;
        let Ok(ceremony) = self
            .take_ceremony(challenge.id, CeremonyKind::Mfa, Some(user.id))
            .await
        else {
            return Ok(None);
        };
        let state: PasskeyAuthentication =
            serde_json::from_str(&ceremony.state_json).map_err(internal)?;
        let Ok(credential) = serde_json::from_value::<PublicKeyCredential>(credential.clone())
        else {
            return Ok(None);
        };
        let Some(kind) = self
            .verify_assertion(service, user.id, &credential, client, |w, c| {
                w.finish_passkey_authentication(c, &state)
            })
            .await?
        else {
            return Ok(None);
        };
        self.consume_mfa(challenge).await?;
        Ok(Some(vec!["pwd".into(), kind.into(), "mfa".into()]))
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
                self.event(user_id, EventKind::PasskeyCloneSuspected, None, client)
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
                    .record_passkey_use(record.id, &json, self.clock.now())
                    .await?;
                let synced = result.backup_eligible() || record.backup_eligible;
                return Ok(Some(if synced { "swk" } else { "hwk" }));
            }
        }
        // Verified against the state, but the key is gone (deleted meanwhile).
        Ok(None)
    }
}

/// A passwordless sign-in answer.
pub struct PasskeyLoginRequest {
    /// From the start call.
    pub challenge_id: Uuid,
    /// The authenticator's `PublicKeyCredential`.
    pub credential: serde_json::Value,
    /// Long session.
    pub remember_me: bool,
    /// How the client wants its tokens.
    pub delivery: super::Delivery,
}

impl Auth {
    /// Starts a passwordless sign-in with a discoverable passkey: the options
    /// name no user and no credential, so they reveal nothing about any address.
    pub async fn start_passkey_login(
        &self,
        client: &ClientContext,
    ) -> Result<(Uuid, serde_json::Value), AuthError> {
        let service = self.passkey_service()?;
        let (options, state) = service
            .webauthn
            .start_discoverable_authentication()
            .map_err(internal)?;
        let id = Uuid::now_v7();
        self.store_ceremony(id, CeremonyKind::Login, None, client, &state, None)
            .await?;
        Ok((id, serde_json::to_value(options).map_err(internal)?))
    }

    /// Finishes a passwordless sign-in. The passkey's user handle names the
    /// account and the credential id one of its passkeys (else the answer is
    /// `InvalidMfaCode`, counted nowhere); that passkey has its own lockout
    /// counter (a locked one answers `Locked`, a wrong assertion counts), apart
    /// from the password's; a disabled or unverified account is
    /// refused as at password sign-in. `amr` is `["hwk"|"swk", "mfa"]`: a
    /// user-verified passkey is possession plus PIN or biometrics.
    pub async fn login_with_passkey(
        &self,
        req: &PasskeyLoginRequest,
        client: &ClientContext,
    ) -> Result<Issued, AuthError> {
        let service = self.passkey_service()?;
        let ceremony = self
            .take_ceremony(req.challenge_id, CeremonyKind::Login, None)
            .await?;
        let state: webauthn_rs::prelude::DiscoverableAuthentication =
            serde_json::from_str(&ceremony.state_json).map_err(internal)?;
        let credential: PublicKeyCredential = serde_json::from_value(req.credential.clone())
            .map_err(|_| AuthError::InvalidMfaCode)?;
        let (user_id, credential_id) = service
            .webauthn
            .identify_discoverable_authentication(&credential)
            .map_err(|_| AuthError::InvalidMfaCode)?;
        let user = self
            .store
            .user_by_id(user_id)
            .await?
            .ok_or(AuthError::InvalidMfaCode)?;
        let passkeys = self.parsed_passkeys(user.id).await?;
        // Only an assertion for a passkey the account has counts, on that
        // passkey's own counter: a forged assertion naming someone's user
        // handle cannot lock them out, and password guesses never lock
        // phishing-resistant sign-in.
        if !passkeys
            .iter()
            .any(|(_, p)| p.cred_id().as_ref() == credential_id)
        {
            return Err(AuthError::InvalidMfaCode);
        }
        let key = self.lockout.passkey_key(credential_id);
        let attempt = self.reserve_attempt(&key, Some(&user), client).await?;
        let keys: Vec<webauthn_rs::prelude::DiscoverableKey> =
            passkeys.iter().map(|(_, p)| p.into()).collect();
        let verified = self
            .verify_assertion(service, user.id, &credential, client, |w, c| {
                w.finish_discoverable_authentication(c, state, &keys)
            })
            .await?;
        let Some(kind) = verified else {
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
        if self.policy.require_email_verification && user.email_verified_at.is_none() {
            self.attempt_released(&attempt).await?;
            return Err(AuthError::EmailNotVerified);
        }
        self.finish_sign_in(
            user,
            &attempt,
            super::SessionTerms {
                remember_me: req.remember_me,
                delivery: req.delivery,
            },
            vec![kind.into(), "mfa".into()],
            client,
        )
        .await
    }
}
