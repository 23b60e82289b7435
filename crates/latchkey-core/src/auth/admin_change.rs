//! An administrator's change to an account (`PATCH /v1/admin/users/{id}`):
//! name, address, verified state. A new address needs no confirmation by the
//! owner, but the old address is told.

use minijinja::context;
use uuid::Uuid;

use crate::access::Permission;
use crate::account::normalize_email;
use crate::audit::EventKind;
use crate::mail::templates::Template;
use crate::ports::{AccountChange, StoreError};

use super::admin::{Admin, AdminUser, Caller};
use super::{AuthError, ClientContext};

/// What to change; `None` leaves a field alone. `email` and `name` are
/// checked for shape by the caller.
#[derive(Debug, Clone, Default)]
pub struct ChangeAccount {
    /// The display name; `Some(None)` clears it.
    pub name: Option<Option<String>>,
    /// A new address.
    pub email: Option<String>,
    /// Whether the address counts as verified. With a new address and no
    /// value here, the new address counts as verified (an administrator set
    /// it).
    pub email_verified: Option<bool>,
}

impl Admin {
    /// Changes an account (`users:write`). Guarantees: a new address takes
    /// effect at once, voids every link mailed before (reset, verification,
    /// pending address change) and queues an `email_changed` notice to the
    /// old address (when that notice is on) in the same transaction as the
    /// change and its `account_changed` event (which names the fields, not
    /// their values). `Conflict` for an address another account has;
    /// `NotFound` for no such account.
    pub async fn change_user(
        &self,
        caller: Caller<'_>,
        id: Uuid,
        change: &ChangeAccount,
        client: &ClientContext,
    ) -> Result<AdminUser, AuthError> {
        let actor = self.authorize(caller, Permission::UsersWrite).await?;
        let user = self
            .store
            .user_by_id(id)
            .await?
            .ok_or(AuthError::NotFound)?;
        let email = change
            .email
            .as_deref()
            .map(str::trim)
            .filter(|e| *e != user.email)
            .map(|e| (e.to_owned(), normalize_email(e)));
        let moved = email
            .as_ref()
            .is_some_and(|(_, normalized)| *normalized != user.email_normalized);
        let stored = AccountChange {
            name: change.name.clone(),
            email_verified: change
                .email_verified
                .or_else(|| email.is_some().then_some(true)),
            email,
        };
        let notice = match &stored.email {
            Some((new_email, _)) if moved && self.common.links.notify.email_changed => {
                Some(self.common.compose(
                    Template::EmailChanged,
                    &user.email,
                    super::notices::mail_name(&user),
                    context! { new_email => new_email },
                )?)
            }
            _ => None,
        };
        let mut fields = Vec::new();
        if stored.name.is_some() {
            fields.push("name");
        }
        if stored.email.is_some() {
            fields.push("email");
        }
        if stored.email_verified.is_some() {
            fields.push("email_verified");
        }
        let event = self.admin_event(
            id,
            EventKind::AccountChanged,
            actor,
            client,
            &serde_json::json!({ "fields": fields }),
        );
        let changed = self
            .store
            .change_account(id, &stored, self.common.now(), notice.as_ref(), &event)
            .await;
        self.forget_account(id);
        match changed {
            Ok(true) => {}
            Ok(false) => return Err(AuthError::NotFound),
            Err(StoreError::Conflict { .. }) => return Err(AuthError::Conflict),
            Err(e) => return Err(e.into()),
        }
        self.read_user(id).await
    }
}
