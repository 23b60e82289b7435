//! Bringing the stored normalized addresses up to the current rules
//! ([`super::normalize_email`]) after an upgrade changed them.

use crate::ports::{Store, StoreError};

/// Accounts handled per batch.
const BATCH: u32 = 500;

/// What [`renormalize_emails`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Renormalized {
    /// Accounts whose normalized address was rewritten (or found current).
    pub updated: u64,
    /// Accounts whose new form another account holds already: their address
    /// keeps its old form (and its lookups go to the other account).
    pub collisions: u64,
}

/// Normalizes again every address stored under older rules, in batches.
/// Idempotent and resumable: an account is marked current as it is done, so
/// an interrupted run continues where it stopped, and a run with nothing to do
/// is one indexed query.
pub async fn renormalize_emails(store: &dyn Store) -> Result<Renormalized, StoreError> {
    let mut done = Renormalized::default();
    loop {
        let batch = store.stale_email_normalizations(BATCH).await?;
        if batch.is_empty() {
            return Ok(done);
        }
        for (id, email) in batch {
            if store
                .renormalize_email(id, &super::normalize_email(&email))
                .await?
            {
                done.updated += 1;
            } else {
                done.collisions += 1;
                tracing::warn!(
                    user_id = %id,
                    "another account holds this account's normalized address under the new rules; it keeps its old form"
                );
            }
        }
    }
}
