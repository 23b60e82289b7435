//! Passkeys and WebAuthn ceremonies.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::mfa::passkey::Ceremony;
use crate::mfa::passkey::PasskeyRecord;

use super::Aftermath;
use super::StoreError;

/// The `constraint` of the conflict [`PasskeyStore::insert_passkey`] reports
/// when the user holds the most passkeys allowed.
pub const PASSKEY_LIMIT: &str = "passkey_limit";

/// Registered passkeys and WebAuthn ceremonies.
#[async_trait]
pub trait PasskeyStore: Send + Sync {
    /// Adds a passkey and writes `after`, in one transaction; `Conflict` (nothing
    /// written) when its credential id is registered already (for any user),
    /// or — constraint [`PASSKEY_LIMIT`] — when the user holds `max_per_user`
    /// passkeys already (counted inside the transaction: concurrent
    /// registrations of one user take turns and cannot exceed it).
    async fn insert_passkey(
        &self,
        passkey: &PasskeyRecord,
        after: &Aftermath<'_>,
        max_per_user: u32,
    ) -> Result<(), StoreError>;

    /// The user's passkeys, oldest first.
    async fn passkeys(&self, user_id: Uuid) -> Result<Vec<PasskeyRecord>, StoreError>;

    /// Stores the state after a successful use (counter, flags, JSON) and the
    /// time of use.
    async fn record_passkey_use(
        &self,
        id: Uuid,
        passkey_json: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Renames the user's passkey; whether it exists.
    async fn rename_passkey(&self, user_id: Uuid, id: Uuid, name: &str)
        -> Result<bool, StoreError>;

    /// Removes the user's passkey and writes `after`, in one transaction that
    /// also removes the recovery codes when no factor is left (as
    /// [`MfaStore::delete_totp`]); whether it existed (nothing written when it
    /// did not).
    async fn delete_passkey(
        &self,
        user_id: Uuid,
        id: Uuid,
        now: OffsetDateTime,
        after: &Aftermath<'_>,
    ) -> Result<bool, StoreError>;

    /// Stores a ceremony and, in the same transaction, deletes the oldest
    /// open ceremonies of its owner beyond the `max_open` newest: a flood of
    /// starts keeps a bounded number of rows per user or client.
    async fn create_ceremony(&self, ceremony: &Ceremony, max_open: u32) -> Result<(), StoreError>;

    /// Removes and returns the ceremony (single use: of concurrent calls, one
    /// gets it). Expired ones are returned too; the caller checks the time.
    async fn take_ceremony(&self, id: Uuid) -> Result<Option<Ceremony>, StoreError>;
}
