//! `refresh`: spend a refresh token, get a new pair.

use crate::account::User;
use crate::audit::EventKind;
use crate::session::{
    hash_refresh_token, looks_like_refresh_token, new_refresh_token, RevokeReason, RotateOutcome,
};

use super::{AuthError, ClientContext, Issued, Sessions};

/// What a cookie-mode refresh gives.
#[derive(Debug)]
pub enum Refreshed {
    /// The token was spent: a new pair.
    Rotated(Issued),
    /// The token had just been spent by a concurrent refresh of the same
    /// browser (another tab), within `SessionPolicy::cookie_reuse_grace`:
    /// nothing was revoked, and the answer is a fresh access token for the
    /// same session. The refresh token to keep is the one the winning refresh
    /// set (the browser holds it already).
    Concurrent(AccessOnly),
}

/// A new access token for a session whose refresh token stays as it is.
pub struct AccessOnly {
    /// The signed access token (JWT).
    pub access_token: String,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// Seconds until the session ends unless refreshed.
    pub refresh_expires_in: i64,
    /// The session.
    pub session_id: uuid::Uuid,
    /// The signed-in user.
    pub user: User,
}

impl std::fmt::Debug for AccessOnly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessOnly")
            .field("session_id", &self.session_id)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// The live session a still-usable refresh token belongs to, without
    /// spending it (cookie mode checks the session's CSRF token first). A
    /// `cookie` presentation names only a session that may be cookie mode (a
    /// token-mode session's token in a cookie gets neither a CSRF check that
    /// passes nor the tab grace), and a token spent within the cookie grace
    /// still names its session (the concurrent refresh it lost to is
    /// answered, not revoked).
    pub async fn refresh_token_session(
        &self,
        presented: &str,
        cookie: bool,
    ) -> Result<Option<uuid::Uuid>, AuthError> {
        self.live_refresh_session(presented, self.grace(cookie), cookie)
            .await
    }

    /// For `GET /v1/csrf`: the live cookie-mode session of an unspent
    /// refresh cookie (no grace: a spent one names nothing).
    pub async fn csrf_refresh_session(
        &self,
        presented: &str,
    ) -> Result<Option<uuid::Uuid>, AuthError> {
        self.live_refresh_session(presented, self.grace(false), true)
            .await
    }

    async fn live_refresh_session(
        &self,
        presented: &str,
        spent_within: time::Duration,
        cookie_only: bool,
    ) -> Result<Option<uuid::Uuid>, AuthError> {
        if !looks_like_refresh_token(presented) {
            return Ok(None);
        }
        let now = self.common.now();
        let found = self
            .store
            .refresh_token_session(&hash_refresh_token(presented), now, spent_within)
            .await?;
        Ok(found
            .filter(|(session, _)| {
                session.is_live(now) && (!cookie_only || session.may_be_cookie_mode())
            })
            .map(|(session, _)| session.id))
    }

    /// `session_id` if it is live and may be a browser's cookie-mode session
    /// (see [`crate::session::Session::may_be_cookie_mode`]): what `GET
    /// /v1/csrf` hands a CSRF token for.
    pub async fn cookie_session(
        &self,
        session_id: uuid::Uuid,
    ) -> Result<Option<uuid::Uuid>, AuthError> {
        let now = self.common.now();
        Ok(self
            .store
            .session(session_id)
            .await?
            .filter(|s| s.is_live(now) && s.may_be_cookie_mode())
            .map(|s| s.id))
    }

    fn grace(&self, cookie: bool) -> time::Duration {
        if cookie {
            self.policy.cookie_reuse_grace
        } else {
            self.policy.reuse_grace
        }
    }

    /// Rotates a refresh token.
    ///
    /// Guarantees: a token works once (concurrent presentations: one wins);
    /// presenting a spent token revokes its whole family and session and records
    /// `refresh_reuse_detected`; a different device fingerprint is recorded as
    /// `device_changed`, and refused (session revoked) when the policy binds
    /// sessions to devices; a disabled account's session ends.
    pub async fn refresh(
        &self,
        presented: &str,
        client: &ClientContext,
    ) -> Result<Issued, AuthError> {
        match self.rotate(presented, client, false).await? {
            Refreshed::Rotated(issued) => Ok(issued),
            // Token mode keeps `tokens.refresh_reuse_grace_seconds`: within it
            // a spent token is refused without revoking.
            Refreshed::Concurrent(_) => Err(AuthError::InvalidToken),
        }
    }

    /// [`Sessions::refresh`] for a browser's refresh cookie: a token spent by a
    /// concurrent refresh within the cookie grace (two tabs refreshing at
    /// once) gets a fresh access token for its session instead of counting as
    /// reuse; reuse after the grace still revokes the family.
    pub async fn refresh_cookie(
        &self,
        presented: &str,
        client: &ClientContext,
    ) -> Result<Refreshed, AuthError> {
        self.rotate(presented, client, true).await
    }

    async fn rotate(
        &self,
        presented: &str,
        client: &ClientContext,
        cookie: bool,
    ) -> Result<Refreshed, AuthError> {
        if !looks_like_refresh_token(presented) {
            return Err(AuthError::InvalidToken);
        }
        let now = self.common.now();
        // Session and expiry of `next` are set by the store from the family.
        let (refresh_token, next) = new_refresh_token(uuid::Uuid::nil(), now, now);
        let outcome = self
            .store
            .rotate_refresh_token(
                &hash_refresh_token(presented),
                &next,
                now,
                self.policy.idle_timeout,
                self.grace(cookie),
            )
            .await?;
        let (session, rotated) = match outcome {
            RotateOutcome::Rotated(session) => (*session, true),
            // A token-mode session's spent token through the cookie path (a
            // thief trying for the tab grace): reuse, as it would be in the
            // body after the token grace — the family is revoked.
            RotateOutcome::Concurrent(session) if cookie && !session.may_be_cookie_mode() => {
                let revoked = self
                    .store
                    .revoke_session(session.user_id, session.id, RevokeReason::RefreshReuse, now)
                    .await?;
                if revoked {
                    self.reuse_detected(session.id, session.user_id, client)
                        .await;
                }
                return Err(AuthError::InvalidToken);
            }
            RotateOutcome::Concurrent(session) => (*session, false),
            RotateOutcome::Reused {
                session_id,
                user_id,
            } => {
                self.reuse_detected(session_id, user_id, client).await;
                return Err(AuthError::InvalidToken);
            }
            RotateOutcome::Invalid => return Err(AuthError::InvalidToken),
        };
        if session.fingerprint != client.fingerprint {
            self.common
                .event(
                    session.user_id,
                    EventKind::DeviceChanged,
                    Some(session.id),
                    client,
                )
                .await;
            if self.policy.bind_device {
                self.store
                    .revoke_session(
                        session.user_id,
                        session.id,
                        RevokeReason::DeviceMismatch,
                        now,
                    )
                    .await?;
                self.common.cache.forget_session(session.id);
                return Err(AuthError::InvalidToken);
            }
        }
        let Some(user) = self.store.user_by_id(session.user_id).await? else {
            return Err(AuthError::InvalidToken);
        };
        if user.disabled_at.is_some() {
            self.store
                .revoke_session(user.id, session.id, RevokeReason::UserRevoked, now)
                .await?;
            self.common.cache.forget_session(session.id);
            return Err(AuthError::InvalidToken);
        }
        let (access_token, expires_in) = self.access_token(&user, &session)?;
        let refresh_expires_in = (session.idle_expires_at - now).whole_seconds();
        Ok(if rotated {
            Refreshed::Rotated(Issued {
                access_token,
                expires_in,
                refresh_token,
                refresh_expires_in,
                session_id: session.id,
                user,
            })
        } else {
            Refreshed::Concurrent(AccessOnly {
                access_token,
                expires_in,
                refresh_expires_in,
                session_id: session.id,
                user,
            })
        })
    }

    /// The aftermath of a reused refresh token (its family is revoked): the
    /// cache forgets the session, the event is recorded, the owner told.
    async fn reuse_detected(
        &self,
        session_id: uuid::Uuid,
        user_id: uuid::Uuid,
        client: &ClientContext,
    ) {
        self.common.cache.forget_session(session_id);
        tracing::warn!(%session_id, "refresh token reuse: family revoked");
        self.common
            .event(
                user_id,
                EventKind::RefreshReuseDetected,
                Some(session_id),
                client,
            )
            .await;
        if self.common.links.notify.refresh_reuse {
            match self.store.user_by_id(user_id).await {
                Ok(Some(user)) => {
                    self.common
                        .notice(
                            true,
                            crate::mail::templates::Template::SessionRevoked,
                            &user,
                            Some(client),
                            minijinja::context! {},
                        )
                        .await;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "reuse notice skipped"),
            }
        }
    }
}
