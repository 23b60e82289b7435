//! `refresh`: spend a refresh token, get a new pair.

use crate::audit::EventKind;
use crate::session::{
    hash_refresh_token, looks_like_refresh_token, new_refresh_token, RevokeReason, RotateOutcome,
};

use super::{Auth, AuthError, ClientContext, Issued};

impl Auth {
    /// The live session a still-usable refresh token belongs to, without
    /// spending it (cookie mode checks the session's CSRF token first).
    pub async fn refresh_token_session(
        &self,
        presented: &str,
    ) -> Result<Option<uuid::Uuid>, AuthError> {
        if !looks_like_refresh_token(presented) {
            return Ok(None);
        }
        let now = self.clock.now();
        let found = self
            .store
            .refresh_token_session(&hash_refresh_token(presented), now)
            .await?;
        Ok(found
            .filter(|(session, _)| session.is_live(now))
            .map(|(session, _)| session.id))
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
        if !looks_like_refresh_token(presented) {
            return Err(AuthError::InvalidToken);
        }
        let now = self.clock.now();
        // Session and expiry of `next` are set by the store from the family.
        let (refresh_token, next) = new_refresh_token(uuid::Uuid::nil(), now, now);
        let outcome = self
            .store
            .rotate_refresh_token(
                &hash_refresh_token(presented),
                &next,
                now,
                self.policy.idle_timeout,
                self.policy.reuse_grace,
            )
            .await?;
        let session = match outcome {
            RotateOutcome::Rotated(session) => *session,
            RotateOutcome::Reused {
                session_id,
                user_id,
            } => {
                self.cache.forget_session(session_id);
                tracing::warn!(%session_id, "refresh token reuse: family revoked");
                self.event(
                    user_id,
                    EventKind::RefreshReuseDetected,
                    Some(session_id),
                    client,
                )
                .await;
                if self.links.notify.refresh_reuse {
                    match self.store.user_by_id(user_id).await {
                        Ok(Some(user)) => {
                            self.notice(
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
                return Err(AuthError::InvalidToken);
            }
            RotateOutcome::Invalid => return Err(AuthError::InvalidToken),
        };
        if session.fingerprint != client.fingerprint {
            self.event(
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
                self.cache.forget_session(session.id);
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
            self.cache.forget_session(session.id);
            return Err(AuthError::InvalidToken);
        }
        let (access_token, expires_in) = self.access_token(&user, &session)?;
        Ok(Issued {
            access_token,
            expires_in,
            refresh_token,
            refresh_expires_in: (session.idle_expires_at - now).whole_seconds(),
            session_id: session.id,
            user,
        })
    }
}
