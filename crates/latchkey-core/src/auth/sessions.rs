//! The sessions service: starting a session and issuing its tokens, refresh
//! (`refresh.rs`), checking an access token and ending sessions (`verify.rs`),
//! introspection and the security summary.

use std::sync::Arc;

use uuid::Uuid;

use crate::account::User;
use crate::audit::EventKind;
use crate::ports::{Aftermath, SessionPorts, StoreError};
use crate::session::{new_refresh_token, NewSession, Session};
use crate::token::{new_claims, ActiveKeys, TokenSettings};

use super::common::Common;
use super::{new_event, AuthError, ClientContext, Delivery, Issued, SessionPolicy, SessionTerms};

/// Sessions and their tokens. Guarantees: a new session always gets a fresh
/// id (nothing from before authentication is reused); refresh tokens are
/// stored only hashed and rotate on every use, a reused one revoking its
/// family; every revocation made here drops the cached answers at once.
#[derive(Clone)]
pub struct Sessions {
    pub(crate) store: Arc<dyn SessionPorts>,
    pub(crate) keys: Arc<ActiveKeys>,
    pub(crate) tokens: TokenSettings,
    pub(crate) policy: SessionPolicy,
    pub(crate) cursors: crate::page::Cursors,
    pub(crate) live: crate::audit::live::LiveEvents,
    pub(crate) common: Common,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// The signing keys (the server's key watcher swaps them in place; JWKS
    /// is published from them).
    pub fn keys(&self) -> &Arc<ActiveKeys> {
        &self.keys
    }

    /// Issuer, audience and lifetimes of the access tokens.
    pub fn tokens(&self) -> &TokenSettings {
        &self.tokens
    }

    /// Signs an access token for a live session, carrying the user's roles
    /// as read with `user` (for display by resource servers; the admin API
    /// reads the current roles instead).
    pub(crate) fn access_token(
        &self,
        user: &User,
        session: &Session,
    ) -> Result<(String, i64), AuthError> {
        let now = self.common.now();
        let claims = new_claims(
            &self.tokens,
            now,
            user.id,
            session.id,
            session.created_at,
            session.amr.clone(),
            user.roles.clone(),
        );
        let token = self.keys.ring().sign(&claims).map_err(AuthError::Token)?;
        Ok((token, claims.exp - now.unix_timestamp()))
    }

    /// Starts a new session (fresh id: nothing from before authentication is
    /// reused) and issues its first tokens. `event` (with the new session's id)
    /// and `notice` are written in the session's transaction.
    pub(crate) async fn start_session(
        &self,
        user: User,
        terms: SessionTerms,
        amr: Vec<String>,
        client: &ClientContext,
        event: Option<EventKind>,
        notice: Option<&crate::mail::QueuedMail>,
    ) -> Result<Issued, AuthError> {
        let now = self.common.now();
        let SessionTerms {
            remember_me,
            delivery,
        } = terms;
        let cookie_mode = delivery == Delivery::Cookie;
        let lifetime = if remember_me {
            self.policy.remember_me_timeout
        } else {
            self.policy.absolute_timeout
        };
        let absolute = now + lifetime;
        let session = NewSession {
            id: Uuid::now_v7(),
            user_id: user.id,
            created_at: now,
            idle_expires_at: (now + self.policy.idle_timeout).min(absolute),
            absolute_expires_at: absolute,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            device: client.device.clone(),
            fingerprint: client.fingerprint.clone(),
            remember_me,
            amr,
            cookie_mode,
        };
        let (refresh_token, stored) = new_refresh_token(session.id, now, absolute);
        let event = event.map(|kind| new_event(user.id, kind, Some(session.id), client, now));
        let after = Aftermath {
            revoke: None,
            event: event.as_ref(),
            mail: notice,
            recovery_codes: None,
        };
        let evicted = self
            .store
            .create_session(
                &session,
                &stored,
                self.policy.max_per_user,
                user.security_stamp,
                &after,
            )
            .await
            .map_err(|e| match e {
                // A password or factor change committed while this sign-in
                // ran: it must not survive the change (see the port).
                StoreError::Conflict {
                    constraint: crate::ports::SECURITY_CHANGED,
                } => AuthError::InvalidCredentials,
                other => other.into(),
            })?;
        for id in &evicted {
            self.common.cache.forget_session(*id);
        }
        if !evicted.is_empty() {
            tracing::info!(
                evicted = evicted.len(),
                "session limit reached; oldest sessions revoked"
            );
        }
        let stored_session = Session {
            id: session.id,
            user_id: session.user_id,
            created_at: now,
            last_seen_at: now,
            idle_expires_at: session.idle_expires_at,
            absolute_expires_at: absolute,
            revoked_at: None,
            ip: session.ip,
            user_agent: session.user_agent,
            device: session.device,
            fingerprint: session.fingerprint,
            remember_me,
            amr: session.amr,
            cookie_mode: Some(cookie_mode),
        };
        let (access_token, expires_in) = self.access_token(&user, &stored_session)?;
        Ok(Issued {
            access_token,
            expires_in,
            refresh_token,
            refresh_expires_in: (stored_session.idle_expires_at - now).whole_seconds(),
            session_id: stored_session.id,
            user,
        })
    }
}
