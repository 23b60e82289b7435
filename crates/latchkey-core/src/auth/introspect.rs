//! Token introspection (RFC 7662) for resource servers: the authoritative answer,
//! straight from the store (no cache), so a revocation, a disabled account or
//! a changed role shows at once.

use crate::session::{hash_refresh_token, looks_like_refresh_token, Session};
use crate::token::AccessClaims;

use super::{AuthError, Sessions};

/// What an active token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Introspection {
    /// A valid access token of a live session of an enabled account.
    Access {
        /// The token's claims (its `roles` as issued).
        claims: Box<AccessClaims>,
        /// The account's roles now.
        roles: Vec<String>,
    },
    /// A usable refresh token of an enabled account.
    Refresh {
        /// Its live session.
        session: Box<Session>,
        /// When the token expires.
        expires_at: time::OffsetDateTime,
        /// The account's roles now.
        roles: Vec<String>,
    },
}

impl Sessions {
    /// The token's state, or `None` when it is inactive for any reason (forged,
    /// expired, used, revoked, its session ended, its account disabled or
    /// gone, not a token at all).
    pub async fn introspect(&self, token: &str) -> Result<Option<Introspection>, AuthError> {
        let now = self.common.now();
        if looks_like_refresh_token(token) {
            let found = self
                .store
                .refresh_token_session(&hash_refresh_token(token), now, time::Duration::ZERO)
                .await?;
            let Some((session, expires_at)) = found.filter(|(session, _)| session.is_live(now))
            else {
                return Ok(None);
            };
            return Ok(self.current_roles(session.user_id).await?.map(|roles| {
                Introspection::Refresh {
                    session: Box::new(session),
                    expires_at,
                    roles,
                }
            }));
        }
        let Ok(claims) = self.keys.verify(token, &self.tokens, now) else {
            return Ok(None);
        };
        let (Ok(jti), Ok(sid), Ok(sub)) = (
            claims.jti.parse::<uuid::Uuid>(),
            claims.sid.parse::<uuid::Uuid>(),
            claims.sub.parse::<uuid::Uuid>(),
        ) else {
            return Ok(None);
        };
        if self.store.is_access_token_denied(jti).await? {
            return Ok(None);
        }
        let live = self
            .store
            .session(sid)
            .await?
            .is_some_and(|s| s.user_id == sub && s.is_live(now));
        if !live {
            return Ok(None);
        }
        Ok(self
            .current_roles(sub)
            .await?
            .map(|roles| Introspection::Access {
                claims: Box::new(claims),
                roles,
            }))
    }

    /// The account's roles as stored now; `None` when it is disabled or gone.
    async fn current_roles(&self, user_id: uuid::Uuid) -> Result<Option<Vec<String>>, AuthError> {
        Ok(self
            .store
            .user_by_id(user_id)
            .await?
            .filter(|u| u.disabled_at.is_none())
            .map(|u| u.roles))
    }
}
