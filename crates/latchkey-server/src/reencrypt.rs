//! `latchkey keys reencrypt`: moves every sealed secret to the current master
//! key, so a previous master key can then be removed from the configuration.
//!
//! Each row is re-sealed with a conditional write (only if it still holds the
//! ciphertext that was read), so it is safe while servers run; a row that
//! cannot be opened stops the run and is named, nothing is overwritten with
//! garbage.

use latchkey_core::mfa::TOTP_SEAL_PURPOSE;
use latchkey_core::ports::Store;
use latchkey_core::seal::SealError;

use crate::config::ResolvedSecrets;

/// Rows re-sealed per query.
const BATCH: u32 = 100;

/// What a run changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReencryptReport {
    /// TOTP seeds moved to the current key.
    pub totp_secrets: u64,
    /// Signing keys (database storage) moved to the current key.
    pub signing_keys: u64,
    /// Webhooks whose signing secrets moved to the current key.
    pub webhook_secrets: u64,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReencryptError {
    /// The database failed.
    #[error("database: {0}")]
    Store(#[from] latchkey_core::ports::StoreError),
    /// A ciphertext could not be opened with any configured key.
    #[error("{what}: {source}")]
    Seal {
        /// Which row.
        what: String,
        /// Why.
        #[source]
        source: SealError,
    },
}

/// Re-seals TOTP seeds, database signing keys and webhook secrets under the
/// current master key.
pub async fn run(
    store: &dyn Store,
    secrets: &ResolvedSecrets,
) -> Result<ReencryptReport, ReencryptError> {
    let mut report = ReencryptReport::default();
    let ring = secrets.keyring(TOTP_SEAL_PURPOSE);
    let current = ring.current_key_id();
    loop {
        let batch = store.totp_not_sealed_with(&current, BATCH).await?;
        let mut changed = 0;
        for record in &batch {
            let sealed = ring
                .reseal(&record.secret_sealed, record.id.as_bytes())
                .map_err(|source| ReencryptError::Seal {
                    what: format!("TOTP secret {}", record.id),
                    source,
                })?
                .unwrap_or_else(|| record.secret_sealed.clone());
            if store
                .reseal_totp(record.id, &record.secret_sealed, &sealed, &current)
                .await?
            {
                changed += 1;
            }
        }
        report.totp_secrets += changed;
        // A batch where nothing changed can only be rows changing under us; stop
        // rather than spin (a second run finishes them).
        if batch.len() < BATCH as usize || changed == 0 {
            break;
        }
    }
    let ring = secrets.keyring(crate::keys::SEAL_PURPOSE);
    for algorithm in ["EdDSA", "ES256", "RS256"] {
        for key in store.signing_keys(algorithm).await? {
            let resealed = ring
                .reseal(&key.sealed_key, &crate::keys::seal_aad(&key.kid))
                .map_err(|source| ReencryptError::Seal {
                    what: format!("signing key {}", key.kid),
                    source,
                })?;
            if let Some(sealed) = resealed {
                if store
                    .reseal_signing_key(&key.kid, &key.sealed_key, &sealed)
                    .await?
                {
                    report.signing_keys += 1;
                }
            }
        }
    }
    let ring = secrets.keyring(latchkey_core::auth::WEBHOOK_SEAL_PURPOSE);
    for hook in store.webhooks().await? {
        let reseal = |sealed: &[u8]| {
            ring.reseal(sealed, hook.id.as_bytes())
                .map_err(|source| ReencryptError::Seal {
                    what: format!("webhook {} secret", hook.id),
                    source,
                })
        };
        let current = reseal(&hook.secret_sealed)?;
        let previous = match &hook.previous {
            Some((sealed, _)) => reseal(sealed)?,
            None => None,
        };
        if current.is_none() && previous.is_none() {
            continue;
        }
        let old_previous = hook.previous.as_ref().map(|(s, _)| s.as_slice());
        let new_current = current.as_deref().unwrap_or(&hook.secret_sealed);
        let new_previous = previous.as_deref().or(old_previous);
        if store
            .reseal_webhook_secrets(
                hook.id,
                (&hook.secret_sealed, old_previous),
                (new_current, new_previous),
            )
            .await?
        {
            report.webhook_secrets += 1;
        }
    }
    Ok(report)
}
