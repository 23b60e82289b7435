//! The accounts service: sign-up and address verification (`signup.rs`),
//! address change (`email_change.rs`), and the user's own profile: reading
//! it (cached) and changing it.

use std::sync::Arc;

use uuid::Uuid;

use crate::account::User;
use crate::ports::AccountPorts;

use super::common::Common;
use super::{AuthError, Passwords, Sessions};

/// Accounts. Guarantees: with enumeration protection on, sign-up answers the
/// same for a taken address (its owner is mailed instead); verification and
/// address-change links are single use and stored only hashed; an address
/// change needs the password and is confirmed from the new address.
#[derive(Clone)]
pub struct Accounts {
    pub(crate) store: Arc<dyn AccountPorts>,
    /// New-password rules and hashing; the password check of an address change.
    pub(crate) passwords: Passwords,
    /// The first session, when sign-up does not wait for verification.
    pub(crate) sessions: Sessions,
    pub(crate) require_email_verification: bool,
    pub(crate) common: Common,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").finish_non_exhaustive()
    }
}

impl Accounts {
    /// The user as shown to themselves (`GET /v1/me`). Served from the
    /// in-process cache when read within its TTL; every change made through
    /// this process drops the entry at once, a change made by another node is
    /// seen within the TTL. For display only: nothing security-relevant is
    /// decided on a cached profile.
    pub async fn profile(&self, user_id: Uuid) -> Result<Option<User>, AuthError> {
        if let Some(user) = self.common.cache.profile(user_id) {
            return Ok(Some((*user).clone()));
        }
        let ticket = self.common.cache.profile_ticket(user_id);
        let user = self.store.user_by_id(user_id).await?;
        if let Some(user) = &user {
            self.common.cache.remember_profile(user.clone(), ticket);
        }
        Ok(user)
    }

    /// Sets (or, with `None`, clears) the display name.
    pub async fn update_name(&self, user_id: Uuid, name: Option<&str>) -> Result<(), AuthError> {
        self.store
            .update_name(user_id, name, self.common.now())
            .await?;
        self.common.cache.forget_profile(user_id);
        Ok(())
    }
}
