//! The signing keys as the admin API lists and rotates them: the core's
//! [`SigningKeys`] over this server's [`KeyStorage`], with the configured
//! algorithm, publish-ahead delay and retirement.

use async_trait::async_trait;
use latchkey_core::auth::{KeyInfo, KeyState, SigningKeys};
use latchkey_core::ports::StoreError;
use latchkey_core::token::Algorithm;
use time::{Duration, OffsetDateTime};

use crate::keys::{KeyFileError, KeyStorage};

/// The key storage of a running server, as [`SigningKeys`].
#[derive(Debug)]
pub struct AdminKeys {
    storage: KeyStorage,
    alg: Algorithm,
    retire_after: Duration,
    publish_ahead: Duration,
}

impl AdminKeys {
    /// The keys a validated configuration names, built once at start-up;
    /// `Algorithm` when its algorithm is unknown (validation refuses that).
    pub fn new(
        config: &crate::config::Config,
        store: &std::sync::Arc<dyn latchkey_core::ports::Store>,
        secrets: &crate::config::ResolvedSecrets,
    ) -> Result<Self, crate::StartupError> {
        Ok(Self {
            storage: crate::auth_setup::key_storage(config, store, secrets),
            alg: crate::auth_setup::parse_algorithm(&config.tokens.algorithm)
                .ok_or(crate::StartupError::Algorithm)?,
            retire_after: crate::auth_setup::key_retirement(config),
            publish_ahead: crate::auth_setup::publish_ahead(config),
        })
    }
}

/// Key-storage failures as the store errors the core maps: a database that
/// cannot be reached stays `Unavailable` (503); the rest is internal.
fn store_error(e: KeyFileError) -> StoreError {
    match e {
        KeyFileError::Store(e) => e,
        other => StoreError::Internal(Box::new(other)),
    }
}

#[async_trait]
impl SigningKeys for AdminKeys {
    async fn list(&self, now: OffsetDateTime) -> Result<Vec<KeyInfo>, StoreError> {
        self.storage
            .list(self.alg, now, self.retire_after)
            .await
            .map_err(store_error)
    }

    async fn rotate(&self, now: OffsetDateTime) -> Result<KeyInfo, StoreError> {
        let activates_at = now + self.publish_ahead;
        let key = self
            .storage
            .rotate(self.alg, now, activates_at, self.retire_after)
            .await
            .map_err(store_error)?;
        let listed = self.list(now).await?;
        Ok(listed
            .into_iter()
            .find(|k| k.kid == key.kid())
            .unwrap_or_else(|| KeyInfo {
                kid: key.kid().to_owned(),
                alg: self.alg.name().to_owned(),
                state: if activates_at > now {
                    KeyState::Published
                } else {
                    KeyState::Active
                },
                created_at: now,
                activates_at,
                expires_at: None,
            }))
    }
}
