//! The signed-in user's own profile: reading it (cached) and changing it.

use uuid::Uuid;

use crate::account::User;

use super::{Auth, AuthError};

impl Auth {
    /// The user as shown to themselves (`GET /v1/me`). Served from the
    /// in-process cache when read within its TTL; every change made through
    /// this process drops the entry at once, a change made by another node is
    /// seen within the TTL. For display only: nothing security-relevant is
    /// decided on a cached profile.
    pub async fn profile(&self, user_id: Uuid) -> Result<Option<User>, AuthError> {
        if let Some(user) = self.cache.profile(user_id) {
            return Ok(Some((*user).clone()));
        }
        let ticket = self.cache.profile_ticket(user_id);
        let user = self.store.user_by_id(user_id).await?;
        if let Some(user) = &user {
            self.cache.remember_profile(user.clone(), ticket);
        }
        Ok(user)
    }

    /// Sets (or, with `None`, clears) the display name.
    pub async fn update_name(&self, user_id: Uuid, name: Option<&str>) -> Result<(), AuthError> {
        self.store
            .update_name(user_id, name, self.clock.now())
            .await?;
        self.cache.forget_profile(user_id);
        Ok(())
    }
}
