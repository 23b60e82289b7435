//! What each core service may reach of the store: one bundle of ports per
//! service, so a service holding `Arc<dyn SignInPorts>` cannot call a port it
//! was not given (the compiler checks it). Every [`super::Store`] is each
//! bundle (they are its super-traits), so the composition root hands one store
//! to every service, narrowed by upcasting.

use super::{
    AdminStore, EventStore, MfaStore, OutboxStore, PasskeyStore, RoleStore, SessionStore,
    SigningKeyStore, ThrottleStore, UserStore, VerificationStore, WebhookStore,
};

/// Security events and queued mail: what every service records after a change.
pub trait CommonPorts: EventStore + OutboxStore + Send + Sync {}
impl<T: ?Sized + EventStore + OutboxStore + Send + Sync> CommonPorts for T {}

/// Sessions, their tokens and the account they belong to (the sessions service).
pub trait SessionPorts: SessionStore + UserStore + EventStore + Send + Sync {}
impl<T: ?Sized + SessionStore + UserStore + EventStore + Send + Sync> SessionPorts for T {}

/// Accounts, the devices they signed in from and their second-factor
/// challenges (the sign-in service).
pub trait SignInPorts: UserStore + SessionStore + MfaStore + Send + Sync {}
impl<T: ?Sized + UserStore + SessionStore + MfaStore + Send + Sync> SignInPorts for T {}

/// Accounts and their one-time links (sign-up, verification, address change,
/// password change and reset).
pub trait AccountPorts: UserStore + VerificationStore + Send + Sync {}
impl<T: ?Sized + UserStore + VerificationStore + Send + Sync> AccountPorts for T {}

/// Accounts and their TOTP and recovery codes (the MFA service).
pub trait MfaPorts: UserStore + MfaStore + Send + Sync {}
impl<T: ?Sized + UserStore + MfaStore + Send + Sync> MfaPorts for T {}

/// Accounts, their passkeys and WebAuthn ceremonies (the passkey service).
pub trait PasskeyPorts: UserStore + PasskeyStore + Send + Sync {}
impl<T: ?Sized + UserStore + PasskeyStore + Send + Sync> PasskeyPorts for T {}

/// Accounts, their roles, sessions and lockout state, the signing keys and
/// the webhooks (the admin service).
pub trait AdminPorts:
    UserStore
    + AdminStore
    + RoleStore
    + SessionStore
    + ThrottleStore
    + SigningKeyStore
    + WebhookStore
    + Send
    + Sync
{
}
impl<
        T: ?Sized
            + UserStore
            + AdminStore
            + RoleStore
            + SessionStore
            + ThrottleStore
            + SigningKeyStore
            + WebhookStore
            + Send
            + Sync,
    > AdminPorts for T
{
}
