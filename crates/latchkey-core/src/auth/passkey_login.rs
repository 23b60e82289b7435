//! Passkeys at sign-in: the second step of a password sign-in, and the
//! passwordless sign-in with a discoverable passkey.
//!
//! Guarantees: an assertion whose signature counter does not grow is refused
//! and recorded as a possible clone; a passkey has its own lockout counter.

use uuid::Uuid;
use webauthn_rs::prelude::{Passkey, PasskeyAuthentication, PublicKeyCredential};

use crate::account::User;
use crate::audit::EventKind;
use crate::mfa::challenge::MfaChallenge;
use crate::mfa::passkey::CeremonyKind;

use super::passkeys::internal;
use super::{AuthError, ClientContext, Issued, SignIn};

impl SignIn {
    /// The options for `navigator.credentials.get()` in the second step of a
    /// sign-in (stored under the sign-in challenge's id).
    pub(crate) async fn start_passkey_mfa(
        &self,
        user: &User,
        challenge_id: Uuid,
    ) -> Result<Option<serde_json::Value>, AuthError> {
        let Ok(service) = self.passkeys.passkey_service() else {
            return Ok(None);
        };
        let passkeys = self.passkeys.parsed_passkeys(user.id).await?;
        if passkeys.is_empty() {
            return Ok(None);
        }
        let keys: Vec<Passkey> = passkeys.into_iter().map(|(_, p)| p).collect();
        let (options, state) = service
            .webauthn
            .start_passkey_authentication(&keys)
            .map_err(internal)?;
        self.passkeys
            .store_ceremony(
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

    /// Checks a passkey assertion for the second step; `None` when wrong.
    pub(crate) async fn answer_passkey(
        &self,
        user: &User,
        challenge: &MfaChallenge,
        credential: &serde_json::Value,
        client: &ClientContext,
    ) -> Result<Option<Vec<String>>, AuthError> {
        let service = self.passkeys.passkey_service()?;
        let Ok(ceremony) = self
            .passkeys
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
            .passkeys
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

impl SignIn {
    /// Starts a passwordless sign-in with a discoverable passkey: the options
    /// name no user and no credential, so they reveal nothing about any address.
    pub async fn start_passkey_login(
        &self,
        client: &ClientContext,
    ) -> Result<(Uuid, serde_json::Value), AuthError> {
        let service = self.passkeys.passkey_service()?;
        let (options, state) = service
            .webauthn
            .start_discoverable_authentication()
            .map_err(internal)?;
        let id = Uuid::now_v7();
        self.passkeys
            .store_ceremony(id, CeremonyKind::Login, None, client, &state, None)
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
        let service = self.passkeys.passkey_service()?;
        let ceremony = self
            .passkeys
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
        let passkeys = self.passkeys.parsed_passkeys(user.id).await?;
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
        let key = self.attempts.policy.passkey_key(credential_id);
        let attempt = self.attempts.reserve(&key, Some(&user), client).await?;
        let keys: Vec<webauthn_rs::prelude::DiscoverableKey> =
            passkeys.iter().map(|(_, p)| p.into()).collect();
        let verified = self
            .passkeys
            .verify_assertion(service, user.id, &credential, client, |w, c| {
                w.finish_discoverable_authentication(c, state, &keys)
            })
            .await?;
        let Some(kind) = verified else {
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
        if self.require_email_verification && user.email_verified_at.is_none() {
            self.attempts.released(&attempt).await?;
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
