//! What the domain needs from the outside world.
//!
//! Each backend (SQLite, PostgreSQL) implements these traits in its own crate; the
//! conformance suite in `latchkey-testkit` runs the same tests against every
//! implementation so they cannot drift apart.
//!
//! One file per area, each with its trait and the types that trait owns;
//! [`Store`] is the super-trait a backend implements as a whole.

use async_trait::async_trait;

mod admin;
mod events;
mod idempotency;
mod keys;
mod maintenance;
mod mfa;
mod outbox;
mod passkeys;
mod roles;
mod sessions;
mod throttles;
mod users;
mod verification;
mod views;
mod webhooks;

pub use admin::{AccountChange, AdminStore, AdminUserRow, ImportedAccount, NewAccount, UserSearch};
pub use events::{EventFilter, EventStore};
pub use idempotency::{ClaimOutcome, IdempotencyRecord, IdempotencyStore, NewIdempotencyClaim};
pub use keys::{SigningKeyStore, StoredSigningKey};
pub use maintenance::{Expired, MaintenanceStore};
pub use mfa::MfaStore;
pub use outbox::OutboxStore;
pub use passkeys::{PasskeyStore, PASSKEY_LIMIT};
pub use roles::{Access, AdminGuarded, RoleChange, RoleStore};
pub use sessions::{Aftermath, DeviceSeen, Revocation, SessionStore, SECURITY_CHANGED};
pub use throttles::{Throttle, ThrottleStore};
pub use users::UserStore;
pub use verification::{NewEmailChange, NewVerification, PendingEmailChange, VerificationStore};
pub use views::{
    AccountPorts, AdminPorts, CommonPorts, MfaPorts, PasskeyPorts, SessionPorts, SignInPorts,
};
pub use webhooks::WebhookStore;

/// Why a store operation failed. Callers branch on the variant, never on text.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now (connection refused, pool closed or
    /// exhausted, timeout). Maps to `503 unavailable`, never to a 500.
    #[error("database unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A uniqueness constraint rejected the write; `constraint` names which one.
    #[error("unique constraint violated: {constraint}")]
    Conflict {
        /// Stable name of the violated constraint (e.g. `users_email_normalized`).
        constraint: &'static str,
    },
    /// Anything else: a bug or a corrupt database. The source goes to the log only.
    #[error("database error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Everything latchkey persists, plus the operations on the store as a whole.
#[async_trait]
pub trait Store:
    UserStore
    + SessionStore
    + EventStore
    + VerificationStore
    + OutboxStore
    + MaintenanceStore
    + SigningKeyStore
    + ThrottleStore
    + MfaStore
    + PasskeyStore
    + RoleStore
    + AdminStore
    + IdempotencyStore
    + WebhookStore
    + CommonPorts
    + SessionPorts
    + SignInPorts
    + AccountPorts
    + MfaPorts
    + PasskeyPorts
    + AdminPorts
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// Round-trips a trivial query; used by `/readyz`.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Applies pending embedded migrations. Idempotent.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Closes every pooled connection; later calls fail with `Unavailable`.
    async fn close(&self);

    /// Which engine this is (`"sqlite"` or `"postgres"`), for logs and `/readyz`.
    fn backend(&self) -> &'static str;
}

/// Connection-pool sizing shared by both database backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// Upper bound of open connections.
    pub max_connections: u32,
    /// Connections kept open while idle.
    pub min_connections: u32,
    /// How long a query waits for a free connection before failing `Unavailable`.
    pub acquire_timeout: std::time::Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: std::time::Duration::from_secs(3),
        }
    }
}
