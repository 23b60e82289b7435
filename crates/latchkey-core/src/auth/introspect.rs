//! Token introspection (RFC 7662) for resource servers: the authoritative answer,
//! straight from the store (no cache), so a revocation shows at once.

use crate::session::{hash_refresh_token, looks_like_refresh_token, Session};
use crate::token::AccessClaims;

use super::{AuthError, Sessions};

/// What an active token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Introspection {
    /// A valid access token of a live session.
    Access(AccessClaims),
    /// A usable refresh token.
    Refresh {
        /// Its live session.
        session: Box<Session>,
        /// When the token expires.
        expires_at: time::OffsetDateTime,
    },
}

impl Sessions {
    /// The token's state, or `None` when it is inactive for any reason (forged,
    /// expired, used, revoked, its session ended, not a token at all).
    pub async fn introspect(&self, token: &str) -> Result<Option<Introspection>, AuthError> {
        let now = self.common.now();
        if looks_like_refresh_token(token) {
            let found = self
                .store
                .refresh_token_session(&hash_refresh_token(token), now, time::Duration::ZERO)
                .await?;
            return Ok(found.filter(|(session, _)| session.is_live(now)).map(
                |(session, expires_at)| Introspection::Refresh {
                    session: Box::new(session),
                    expires_at,
                },
            ));
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
        Ok(live.then_some(Introspection::Access(claims)))
    }
}
