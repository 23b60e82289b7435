//! Access-token checks and logout.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::EventKind;
use crate::session::RevokeReason;
use crate::token::AccessClaims;

use super::{AuthError, ClientContext, Sessions};

/// An authenticated caller: the verified claims of a live session's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user_id: Uuid,
    /// Their session.
    pub session_id: Uuid,
    /// The token's id (denylisted at logout).
    pub jti: Uuid,
    /// When the token expires.
    pub expires_at: OffsetDateTime,
    /// How the session authenticated.
    pub amr: Vec<String>,
    /// Roles at issue time.
    pub roles: Vec<String>,
    /// When the session signed in (kept across refreshes).
    pub auth_time: OffsetDateTime,
}

impl Principal {
    /// `SignInAgain` unless this session signed in within `max_age` (`None`:
    /// any time), by `now`: for changes to second factors, which a stolen
    /// refresh token (it keeps a session going, not its sign-in time) must not
    /// make.
    pub(crate) fn require_recent_sign_in(
        &self,
        max_age: Option<time::Duration>,
        now: OffsetDateTime,
    ) -> Result<(), AuthError> {
        match max_age {
            Some(max) if now - self.auth_time > max => Err(AuthError::SignInAgain),
            _ => Ok(()),
        }
    }

    fn from_claims(claims: &AccessClaims) -> Option<Self> {
        Some(Self {
            user_id: claims.sub.parse().ok()?,
            session_id: claims.sid.parse().ok()?,
            jti: claims.jti.parse().ok()?,
            expires_at: OffsetDateTime::from_unix_timestamp(claims.exp).ok()?,
            amr: claims.amr.clone(),
            roles: claims.roles.clone(),
            auth_time: OffsetDateTime::from_unix_timestamp(claims.auth_time).ok()?,
        })
    }
}

/// Counts a refused access token by the check that refused it.
fn rejected(reason: &'static str) -> AuthError {
    metrics::counter!("latchkey_access_token_rejected_total", "reason" => reason).increment(1);
    AuthError::Unauthorized
}

impl Sessions {
    /// Verifies a bearer access token: our key, our algorithm, issuer, audience,
    /// expiry (≤ 60 s leeway), not denylisted, and its session still live.
    /// Every failure is the same `Unauthorized` to the caller; operators see
    /// which check refused it in `latchkey_access_token_rejected_total{reason}`
    /// (`expired`: past `exp`, the routine case; `invalid`: forged, malformed,
    /// foreign or not yet valid; `denied`: logged out; `session`: its session
    /// ended).
    pub async fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let now = self.common.now();
        let claims = match self.keys.verify(token, &self.tokens, now) {
            Ok(claims) => claims,
            Err(crate::token::TokenError::Expired) => return Err(rejected("expired")),
            Err(_) => return Err(rejected("invalid")),
        };
        let Some(principal) = Principal::from_claims(&claims) else {
            return Err(rejected("invalid"));
        };
        let denied = if let Some(denied) = self.common.cache.denied(principal.jti) {
            denied
        } else {
            let ticket = self.common.cache.denied_ticket(principal.jti);
            let denied = self.store.is_access_token_denied(principal.jti).await?;
            self.common
                .cache
                .remember_denied(principal.jti, denied, ticket);
            denied
        };
        if denied {
            return Err(rejected("denied"));
        }
        let live =
            match self
                .common
                .cache
                .session_live(principal.session_id, principal.user_id, now)
            {
                Some(live) => live,
                None => match self.store_session(principal.session_id).await? {
                    (Some(session), ticket) => {
                        self.common.cache.remember_session(&session, ticket);
                        session.user_id == principal.user_id && session.is_live(now)
                    }
                    (None, _) => false,
                },
            };
        if live {
            Ok(principal)
        } else {
            Err(rejected("session"))
        }
    }

    /// The session as the store has it now, with the cache ticket taken
    /// before the read.
    async fn store_session(
        &self,
        id: Uuid,
    ) -> Result<(Option<crate::session::Session>, super::cache::Ticket), AuthError> {
        let ticket = self.common.cache.session_ticket(id);
        Ok((self.store.session(id).await?, ticket))
    }

    /// Ends the caller's session (or all of the user's sessions) and denylists the
    /// presented access token until it expires, so it stops working at once.
    pub async fn logout(
        &self,
        principal: &Principal,
        all: bool,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        self.store
            .deny_access_token(principal.jti, principal.expires_at)
            .await?;
        self.common.cache.deny(principal.jti);
        if all {
            self.revoke_other_sessions(principal, None, RevokeReason::Logout)
                .await?;
        } else {
            self.revoke_session(principal, principal.session_id, RevokeReason::Logout)
                .await?;
        }
        self.common
            .event(
                principal.user_id,
                EventKind::LoggedOut,
                Some(principal.session_id),
                client,
            )
            .await;
        Ok(())
    }
}

impl Sessions {
    /// Revokes one of the caller's sessions (false: not a live session of theirs).
    pub async fn revoke_session(
        &self,
        principal: &Principal,
        session_id: Uuid,
        reason: RevokeReason,
    ) -> Result<bool, AuthError> {
        let revoked = self
            .store
            .revoke_session(principal.user_id, session_id, reason, self.common.now())
            .await?;
        self.common.cache.forget_session(session_id);
        Ok(revoked)
    }

    /// Revokes every session of the caller except `keep`; returns how many.
    pub async fn revoke_other_sessions(
        &self,
        principal: &Principal,
        keep: Option<Uuid>,
        reason: RevokeReason,
    ) -> Result<u64, AuthError> {
        let n = self
            .store
            .revoke_user_sessions(principal.user_id, keep, reason, self.common.now())
            .await?;
        self.common.cache.forget_user(principal.user_id);
        Ok(n)
    }

    /// The user ends one of their sessions from the session list: revoked
    /// with its tokens and recorded (`session_revoked`, naming it); `false`
    /// when it is not a live session of theirs.
    pub async fn end_session(
        &self,
        principal: &Principal,
        session_id: Uuid,
        client: &ClientContext,
    ) -> Result<bool, AuthError> {
        let revoked = self
            .revoke_session(principal, session_id, RevokeReason::UserRevoked)
            .await?;
        if revoked {
            self.common
                .event(
                    principal.user_id,
                    EventKind::SessionRevoked,
                    Some(session_id),
                    client,
                )
                .await;
        }
        Ok(revoked)
    }

    /// The user ends all their sessions but `keep`: revoked with their tokens
    /// and recorded once (`session_revoked` without a session) when any was
    /// live; how many.
    pub async fn end_other_sessions(
        &self,
        principal: &Principal,
        keep: Option<Uuid>,
        client: &ClientContext,
    ) -> Result<u64, AuthError> {
        let n = self
            .revoke_other_sessions(principal, keep, RevokeReason::UserRevoked)
            .await?;
        if n > 0 {
            self.common
                .event(principal.user_id, EventKind::SessionRevoked, None, client)
                .await;
        }
        Ok(n)
    }
}
