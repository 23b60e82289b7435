//! Signing keys in the admin API: listing and rotation behind `keys:rotate`.
//! Where the keys live (key files or sealed rows) is the server's concern,
//! behind [`SigningKeys`]; the rule (who may, and the security event) is here.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::access::Permission;
use crate::audit::EventKind;
use crate::ports::StoreError;

use super::admin::{Admin, Caller};
use super::{AuthError, ClientContext};

/// Where a signing key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Signs new tokens (and verifies).
    Active,
    /// Published in the JWKS ahead of its activation, so caches hold it
    /// before the first token it signs; does not sign yet.
    Published,
    /// Superseded: verifies tokens it signed until `expires_at`, signs none.
    Retired,
}

impl KeyState {
    /// The API's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Published => "published",
            Self::Retired => "retired",
        }
    }
}

/// One signing key as the admin API shows it (never its private part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Key id (the `kid` of the tokens it signs).
    pub kid: String,
    /// JWS algorithm.
    pub alg: String,
    /// Where it is in its life at the time of the listing.
    pub state: KeyState,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// When it signs (or signed) first.
    pub activates_at: OffsetDateTime,
    /// When it leaves the key set, once superseded; `None` while it is the
    /// newest active key or not active yet.
    pub expires_at: Option<OffsetDateTime>,
}

/// The server's signing-key storage, as the admin use cases need it.
#[async_trait]
pub trait SigningKeys: Send + Sync {
    /// The keys in the key set at `now`, oldest first.
    async fn list(&self, now: OffsetDateTime) -> Result<Vec<KeyInfo>, StoreError>;
    /// Makes a key at `now`, published at once and signing after the
    /// configured publish-ahead delay; drops keys that left the set.
    async fn rotate(&self, now: OffsetDateTime) -> Result<KeyInfo, StoreError>;
}

impl Admin {
    /// The signing keys (`keys:rotate`).
    pub async fn keys(
        &self,
        caller: Caller<'_>,
        keys: &dyn SigningKeys,
    ) -> Result<Vec<KeyInfo>, AuthError> {
        self.authorize(caller, Permission::KeysRotate).await?;
        Ok(keys.list(self.common.now()).await?)
    }

    /// A new signing key (`keys:rotate`), recorded as a security event on the
    /// administrator's account (the new `kid` and its activation time).
    pub async fn rotate_keys(
        &self,
        caller: Caller<'_>,
        keys: &dyn SigningKeys,
        client: &ClientContext,
    ) -> Result<KeyInfo, AuthError> {
        let actor = self.authorize(caller, Permission::KeysRotate).await?;
        let key = keys.rotate(self.common.now()).await?;
        if let Some(actor) = actor {
            let details = serde_json::json!({
                "kid": key.kid,
                "alg": key.alg,
                "activates_at": crate::time_fmt::format_rfc3339(key.activates_at),
            });
            let event = self.admin_event(
                actor,
                EventKind::SigningKeyRotated,
                Some(actor),
                client,
                &details,
            );
            // The key exists now whatever happens to the record: a failure
            // is logged, not answered as a failed rotation.
            if let Err(e) = self.common.store.record_event(&event).await {
                tracing::warn!(error = %e, "signing_key_rotated event not recorded");
            }
        }
        Ok(key)
    }
}
