//! The sign-in service and its first step: email + password → a new session
//! or a second-factor challenge (`mfa_login.rs`); passkey sign-in in
//! `passkey_login.rs`.

use std::sync::Arc;

use minijinja::context;

use crate::account::{normalize_email, User};
use crate::audit::EventKind;
use crate::mail::templates::Template;
use crate::mail::QueuedMail;
use crate::mfa::recovery::RecoveryHasher;
use crate::password::PasswordHasher;
use crate::ports::{DeviceSeen, SignInPorts};
use crate::seal::Keyring;

use super::common::Common;
use super::lockout::Attempts;
use super::{AuthError, ClientContext, Issued, Passkeys, Sessions};

/// Signing in: password, second factor, passkey. Guarantees: every
/// credential check is counted on the lockout before it runs; an unknown
/// address costs and answers the same as a wrong password; nothing counts as
/// a success until the last factor is checked.
#[derive(Clone)]
pub struct SignIn {
    pub(crate) store: Arc<dyn SignInPorts>,
    pub(crate) hasher: PasswordHasher,
    pub(crate) attempts: Attempts,
    pub(crate) sessions: Sessions,
    pub(crate) passkeys: Passkeys,
    /// Opens TOTP seeds.
    pub(crate) totp_seal: Arc<Keyring>,
    pub(crate) recovery: RecoveryHasher,
    pub(crate) require_email_verification: bool,
    pub(crate) common: Common,
}

impl std::fmt::Debug for SignIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignIn").finish_non_exhaustive()
    }
}

/// A login attempt.
#[derive(Clone)]
pub struct LoginRequest {
    /// As typed; normalized here.
    pub email: String,
    /// As typed.
    pub password: zeroize::Zeroizing<String>,
    /// Long absolute lifetime.
    pub remember_me: bool,
    /// The device token (cookie) of a browser that signed in to this account
    /// before: its failures are counted apart, so a lock caused by others
    /// does not shut it out.
    pub device_token: Option<String>,
    /// How the client wants its tokens; kept in an MFA challenge so the
    /// second step answers the same way.
    pub delivery: super::Delivery,
}

/// What a correct password leads to.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Signed in.
    SignedIn(Box<Issued>),
    /// The account has a second factor: finish with [`SignIn::login_mfa`].
    MfaRequired(MfaPending),
}

/// The challenge handed to the client after a correct password.
pub struct MfaPending {
    /// Single-use token for `POST /v1/login/mfa` (`lk_mfa_...`).
    pub mfa_token: zeroize::Zeroizing<String>,
    /// Methods the account can answer with (`totp`, `recovery_code`).
    pub methods: Vec<&'static str>,
    /// Seconds until the token expires.
    pub expires_in: i64,
    /// Options for `navigator.credentials.get()` when the account has passkeys.
    pub webauthn: Option<serde_json::Value>,
}

impl std::fmt::Debug for MfaPending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaPending")
            .field("methods", &self.methods)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("remember_me", &self.remember_me)
            .finish_non_exhaustive()
    }
}

/// How long after a wrong password its account bookkeeping waits.
const BOOKKEEPING_DELAY: std::time::Duration = std::time::Duration::from_millis(20);

impl SignIn {
    /// A fresh device token for `email`'s lockout (the browser's device cookie).
    pub fn device_token(&self, email: &str) -> String {
        self.attempts.policy.device_token(email)
    }

    /// The lockout key a valid device token for `email` counts on (`None`:
    /// forged, or for another address or key).
    pub fn device_key(&self, email: &str, token: &str) -> Option<[u8; 32]> {
        self.attempts.policy.device_key(email, token)
    }

    /// Checks the password and starts a session, or, when the account has a
    /// second factor, returns a challenge instead (nothing is cleared or counted
    /// as a success until the second step).
    ///
    /// Guarantees: an unknown email costs the same hashing work as a wrong password
    /// and fails identically (`InvalidCredentials`); a disabled or unverified
    /// account is revealed only after the correct password; failures and successes
    /// are counted on the account; an outdated hash (bcrypt, old Argon2 parameters)
    /// is replaced by a current Argon2id hash after a successful check.
    pub async fn login(
        &self,
        req: &LoginRequest,
        client: &ClientContext,
    ) -> Result<LoginOutcome, AuthError> {
        let email = normalize_email(&req.email);
        let key = req
            .device_token
            .as_deref()
            .and_then(|t| self.attempts.policy.device_key(&email, t))
            .unwrap_or_else(|| self.attempts.policy.identifier_key(&email));
        let found = self.store.user_by_email(&email).await?;
        // Counted before the hash: concurrent guesses cannot all pass a check.
        let attempt = self.attempts.reserve(&key, found.as_ref(), client).await?;
        let Some(user) = found else {
            self.hasher.verify_dummy(&req.password).await;
            self.attempts.failed(&attempt, None, client).await?;
            self.record_unknown_failure_later(&email, self.common.now(), client);
            metrics::counter!("latchkey_login_attempts_total", "result" => "failure").increment(1);
            return Err(AuthError::InvalidCredentials);
        };
        let verdict = match self.hasher.verify(&req.password, &user.password_hash).await {
            Ok(v) => v,
            Err(e) => {
                // A corrupt stored hash must not be an oracle either.
                tracing::error!(error = %e, "stored password hash unusable");
                return Err(AuthError::InvalidCredentials);
            }
        };
        let now = self.common.now();
        if !verdict.matches {
            // The lockout write first: a bookkeeping task started earlier would
            // hold SQLite's single writer while this request waits for it.
            self.attempts.failed(&attempt, Some(&user), client).await?;
            self.count_failed_password_later(user.id, now, client);
            metrics::counter!("latchkey_login_attempts_total", "result" => "failure").increment(1);
            return Err(AuthError::InvalidCredentials);
        }
        if user.disabled_at.is_some() {
            self.attempts.released(&attempt).await?;
            return Err(AuthError::Disabled);
        }
        if self.require_email_verification && user.email_verified_at.is_none() {
            self.attempts.released(&attempt).await?;
            return Err(AuthError::EmailNotVerified);
        }
        if verdict.needs_rehash {
            match self.hasher.hash(&req.password).await {
                Ok(hash) => {
                    // Skipped (false) when a change or reset committed meanwhile;
                    // the session below is then refused by the security stamp.
                    self.store
                        .update_password_hash(user.id, &user.password_hash, &hash, now)
                        .await?;
                }
                Err(e) => tracing::warn!(error = %e, "re-hash failed; keeping the old hash"),
            }
        }
        if user.mfa.enabled() {
            // The password was right: its count is given back; the second
            // step's failures count on the same key.
            self.attempts.released(&attempt).await?;
            let mfa = user.mfa;
            let pending = self.start_mfa_challenge(&user, &key, req, &mfa).await?;
            return Ok(LoginOutcome::MfaRequired(pending));
        }
        let issued = self
            .finish_sign_in(
                user,
                &attempt,
                super::SessionTerms {
                    remember_me: req.remember_me,
                    delivery: req.delivery,
                },
                vec!["pwd".into()],
                client,
            )
            .await?;
        Ok(LoginOutcome::SignedIn(Box::new(issued)))
    }

    /// Records a sign-in for an address with no account as a `login_failed`
    /// event with no account and the address's event identifier (never the
    /// address) in its details: after the answer, in a task of its own, as
    /// [`Self::count_failed_password_later`] does for an account, so the two
    /// answers stay alike in time.
    fn record_unknown_failure_later(
        &self,
        email: &str,
        at: time::OffsetDateTime,
        client: &ClientContext,
    ) {
        let event = crate::audit::SecurityEvent {
            details: Some(
                serde_json::json!({
                    "identifier": self.attempts.policy.event_identifier(email),
                })
                .to_string(),
            ),
            ..super::client_event(EventKind::LoginFailed, client, at)
        };
        let common = self.common.clone();
        let task = async move {
            common.clock.pause(BOOKKEEPING_DELAY).await;
            common.record(&event).await;
        };
        self.common
            .background
            .spawn("unknown_sign_in_bookkeeping", task);
    }

    /// Counts a wrong password on its account (`failed_login_count`, a
    /// `login_failed` event) after the answer, in a task of its own: an unknown
    /// email has no account to write to, so doing these writes inline made a
    /// wrong password measurably slower than an unknown email (a timing oracle;
    /// bench/README.md, "Login timing"). The lockout count, which enforces the
    /// limit, stays inline on both paths. The store ignores a failure older than
    /// the last success, so a late task cannot undo a reset.
    fn count_failed_password_later(
        &self,
        user_id: uuid::Uuid,
        at: time::OffsetDateTime,
        client: &ClientContext,
    ) {
        let (store, common) = (Arc::clone(&self.store), self.common.clone());
        let client = client.clone();
        let task = async move {
            // Let the answer leave first: on a busy machine these writes would
            // otherwise compete with it for CPU and SQLite's single writer.
            common.clock.pause(BOOKKEEPING_DELAY).await;
            match store.record_login_failure(user_id, at).await {
                Ok(_) => tracing::debug!("failed sign-in counted"),
                Err(e) => tracing::warn!(error = %e, "failed sign-in not counted"),
            }
            common.cache.forget_profile(user_id);
            common
                .event_at(user_id, EventKind::LoginFailed, None, &client, at)
                .await;
        };
        // The request's span goes along: the task's lines carry its request id.
        self.common
            .background
            .spawn("failed_sign_in_bookkeeping", task);
    }

    /// The end of every successful sign-in: starts the session (which also
    /// records the event), then counts the success and forgets the lockout
    /// counter of the sign-in's `attempt`, that attempt included. A sign-in refused at the session (a security
    /// change committed meanwhile) counts as no success and clears no lockout.
    pub(crate) async fn finish_sign_in(
        &self,
        user: crate::account::User,
        attempt: &super::lockout::Attempt,
        terms: super::SessionTerms,
        amr: Vec<String>,
        client: &ClientContext,
    ) -> Result<Issued, AuthError> {
        let now = self.common.now();
        let user_id = user.id;
        // What `record_login_success` writes below, without reading the row back.
        let user = crate::account::User {
            failed_login_count: 0,
            last_login_at: Some(now),
            updated_at: now,
            ..user
        };
        let notice = self.new_device_notice(&user, client).await;
        let issued = self
            .sessions
            .start_session(
                user,
                terms,
                amr,
                client,
                Some(EventKind::LoginSucceeded),
                notice.as_ref(),
            )
            .await?;
        self.store.record_login_success(user_id, now).await?;
        if let Some(key) = attempt.counted_key() {
            self.attempts.clear(key).await?;
        }
        attempt.settle();
        metrics::counter!("latchkey_login_attempts_total", "result" => "success").increment(1);
        self.common.cache.forget_profile(user_id);
        Ok(issued)
    }

    /// Before a session starts: the notice to mail when the device (browser
    /// family and OS) has no stored session of the user's, unless it is their
    /// first sign-in ever. Store failures only skip the notice.
    pub(crate) async fn new_device_notice(
        &self,
        user: &User,
        client: &ClientContext,
    ) -> Option<QueuedMail> {
        if !self.common.links.notify.new_device {
            return None;
        }
        match self.store.device_seen(user.id, &client.fingerprint).await {
            Ok(DeviceSeen::New) => {
                let d = &client.device;
                self.common.notice_mail(
                    true,
                    Template::NewDevice,
                    user,
                    Some(client),
                    context! { browser => &d.browser, os => &d.os, device_type => &d.kind },
                )
            }
            Ok(DeviceSeen::Known | DeviceSeen::FirstSignIn) => None,
            Err(e) => {
                tracing::warn!(error = %e, "new-device check skipped");
                None
            }
        }
    }
}
