//! The composition root of the sign-in side: every service built once from
//! [`Dependencies`], each given only its ports and policy.

use std::sync::Arc;

use super::common::{Common, CommonParts};
use super::lockout::Attempts;
use super::{
    AccessCache, Accounts, Admin, Dependencies, Mfa, Passkeys, Passwords, Sessions, SignIn,
};
use crate::background::Background;
use crate::mail::OutboxSeal;

/// Every sign-in service, shared by all requests (clone once per server, not
/// per request).
#[derive(Clone, Debug)]
pub struct Services {
    /// Sessions and their tokens.
    pub sessions: Sessions,
    /// Password, second-factor and passkey sign-in.
    pub sign_in: SignIn,
    /// Sign-up, verification, address change, profile.
    pub accounts: Accounts,
    /// Password rules, change and reset.
    pub passwords: Passwords,
    /// TOTP and recovery codes.
    pub mfa: Mfa,
    /// Passkey registration and management.
    pub passkeys: Passkeys,
    /// Roles, permissions and account administration.
    pub admin: Admin,
    /// The bounded runner every service leaves its after-answer work to (the
    /// server's own such work goes there too; tests wait for it to be idle).
    pub background: Background,
    /// The access cache every service drops entries from (the server connects
    /// it to the other nodes).
    pub cache: AccessCache,
    /// Seals queued mail (the outbox worker opens it).
    pub outbox: Arc<OutboxSeal>,
    /// This node's live event listeners (the server connects them to the
    /// other nodes and closes them at shutdown).
    pub live: crate::audit::live::LiveEvents,
}

impl Services {
    /// Builds every service from `deps`, narrowing the store to each one's
    /// ports.
    #[allow(clippy::too_many_lines)] // one wiring list: each service and the parts it shares
    pub fn new(deps: Dependencies) -> Self {
        let Dependencies {
            store,
            hasher,
            keys,
            tokens,
            policy,
            clock,
            links,
            cache,
            password_policy,
            breach,
            lockout,
            mfa,
            background,
            cursors,
            live,
            webhooks,
        } = deps;
        store.notify_commits(live.clone());
        let outbox = Arc::clone(&links.outbox);
        let common = Common::new(CommonParts {
            store: store.clone(),
            clock,
            cache: cache.clone(),
            background: background.clone(),
            links,
        });
        let attempts = Attempts {
            store: store.clone(),
            policy: lockout.clone(),
            common: common.clone(),
        };
        let privileged_max_age = policy.privileged_max_age;
        let require_email_verification = policy.require_email_verification;
        let sessions = Sessions {
            store: store.clone(),
            keys,
            tokens,
            policy,
            cursors: cursors.clone(),
            live: live.clone(),
            common: common.clone(),
        };
        let passwords = Passwords {
            store: store.clone(),
            hasher: hasher.clone(),
            policy: password_policy,
            breach,
            attempts: attempts.clone(),
            common: common.clone(),
        };
        let admin = Admin {
            store: store.clone(),
            lockout: lockout.clone(),
            passwords: passwords.clone(),
            cursors,
            webhooks,
            common: common.clone(),
        };
        let passkeys = Passkeys {
            store: store.clone(),
            service: mfa.passkeys,
            recovery: mfa.recovery.clone(),
            lockout,
            privileged_max_age,
            common: common.clone(),
        };
        let sign_in = SignIn {
            store: store.clone(),
            hasher,
            attempts,
            sessions: sessions.clone(),
            passkeys: passkeys.clone(),
            totp_seal: Arc::clone(&mfa.seal),
            recovery: mfa.recovery.clone(),
            require_email_verification,
            common: common.clone(),
        };
        let accounts = Accounts {
            store: store.clone(),
            passwords: passwords.clone(),
            sessions: sessions.clone(),
            require_email_verification,
            common: common.clone(),
        };
        let mfa = Mfa {
            store,
            seal: mfa.seal,
            recovery: mfa.recovery,
            issuer: mfa.issuer,
            passwords: passwords.clone(),
            privileged_max_age,
            common,
        };
        Self {
            sessions,
            sign_in,
            accounts,
            passwords,
            mfa,
            passkeys,
            admin,
            background,
            cache,
            outbox,
            live,
        }
    }
}
