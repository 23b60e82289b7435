//! Webhooks through the admin API (`webhooks:write`) and the dead letters of
//! their deliveries (`events:manage`). Each change is a security event on the
//! administrator's account. Secrets are made here, shown once, and kept
//! sealed under the master key (the webhook id as associated data).

use std::sync::Arc;

use time::Duration;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::access::Permission;
use crate::audit::EventKind;
use crate::page;
use crate::seal::Keyring;
use crate::webhooks::signing::WebhookSecret;
use crate::webhooks::target::{check_url, UrlProblem};
use crate::webhooks::{
    DeadLetter, NewWebhook, SubscriptionProblem, Subscriptions, Webhook, MAX_DESCRIPTION,
};

use super::admin::{cursor_position, Admin, Caller, Page};
use super::{AuthError, ClientContext};

/// The sealing purpose of webhook secrets.
pub const WEBHOOK_SEAL_PURPOSE: &str = "webhook-secrets";
/// The listing name of dead letters, in cursors.
const DEAD_LETTERS: &str = "dead-letters";

/// How webhooks are checked and their secrets kept.
#[derive(Clone)]
pub struct WebhookSettings {
    /// Seals secrets ([`WEBHOOK_SEAL_PURPOSE`]).
    pub seal: Arc<Keyring>,
    /// Whether endpoints may be plain HTTP on private networks (dev).
    pub allow_private: bool,
    /// How long a rotated-out secret still signs.
    pub secret_overlap: Duration,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("allow_private", &self.allow_private)
            .field("secret_overlap", &self.secret_overlap)
            .finish_non_exhaustive()
    }
}

impl WebhookSettings {
    /// `secret` sealed for webhook `id`.
    pub fn seal_secret(&self, id: Uuid, secret: &WebhookSecret) -> Vec<u8> {
        self.seal.seal(secret.bytes(), id.as_bytes())
    }

    /// The secret sealed for webhook `id`; `None` when it cannot be opened
    /// (the master key that sealed it is gone).
    pub fn open_secret(&self, id: Uuid, sealed: &[u8]) -> Option<WebhookSecret> {
        self.seal
            .open(sealed, id.as_bytes())
            .ok()
            .map(WebhookSecret::from_bytes)
    }
}

/// Why a webhook was refused (each names the field at fault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookProblem {
    /// `url`.
    Url(UrlProblem),
    /// `events`.
    Events(SubscriptionProblem),
    /// `description`: too long or with control characters.
    Description,
}

/// A webhook with its secret, shown this once.
pub struct WebhookWithSecret {
    /// The webhook.
    pub webhook: Webhook,
    /// `whsec_` + base64.
    pub secret: Zeroizing<String>,
}

impl std::fmt::Debug for WebhookWithSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookWithSecret")
            .field("webhook", &self.webhook.id)
            .finish_non_exhaustive()
    }
}

/// The scheme, host and port of `url`: what events show of an endpoint (its
/// path and query may carry a token).
fn origin(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

impl Admin {
    /// Records an administrator's webhook action on their own account (the
    /// operator, `None`, records nothing).
    async fn record_action(
        &self,
        actor: Option<Uuid>,
        kind: EventKind,
        client: &ClientContext,
        details: serde_json::Value,
    ) {
        if let Some(actor) = actor {
            self.common
                .record(&self.admin_event(actor, kind, Some(actor), client, &details))
                .await;
        }
    }

    /// `NotFound` for an id no webhook has, `Conflict` for a static one (a
    /// change the store refused for webhook `id`).
    async fn refused(&self, id: Uuid) -> AuthError {
        match self.store.webhooks().await {
            Ok(hooks) if hooks.iter().any(|w| w.id == id) => AuthError::Conflict,
            Ok(_) => AuthError::NotFound,
            Err(e) => e.into(),
        }
    }

    /// Adds a webhook (`webhooks:write`) receiving the events committed from
    /// now on whose type `events` names (`*`: all; `alert`: alerts). The URL
    /// must pass the SSRF guard. `WebhookRefused` naming the bad field.
    pub async fn create_webhook(
        &self,
        caller: Caller<'_>,
        url: &str,
        events: &[String],
        description: Option<&str>,
        client: &ClientContext,
    ) -> Result<WebhookWithSecret, AuthError> {
        let actor = self.authorize(caller, Permission::WebhooksWrite).await?;
        let url = check_url(url, self.webhooks.allow_private)
            .map_err(|p| AuthError::WebhookRefused(WebhookProblem::Url(p)))?;
        let events = Subscriptions::parse(events)
            .map_err(|p| AuthError::WebhookRefused(WebhookProblem::Events(p)))?;
        let description = description.map(str::trim).filter(|d| !d.is_empty());
        if description
            .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION || d.chars().any(char::is_control))
        {
            return Err(AuthError::WebhookRefused(WebhookProblem::Description));
        }
        let id = Uuid::now_v7();
        let secret = WebhookSecret::generate();
        let webhook = self
            .store
            .create_webhook(&NewWebhook {
                id,
                url: url.to_string(),
                events: events.clone(),
                description: description.map(str::to_owned),
                secret_sealed: self.webhooks.seal_secret(id, &secret),
                previous: None,
                static_name: None,
                created_at: self.common.now(),
            })
            .await?;
        self.record_action(
            actor,
            EventKind::WebhookCreated,
            client,
            serde_json::json!({
                "webhook_id": id,
                "origin": origin(&url),
                "events": events.names(),
            }),
        )
        .await;
        Ok(WebhookWithSecret {
            webhook,
            secret: secret.reveal(),
        })
    }

    /// Every webhook, oldest first (`webhooks:write`; secrets never shown).
    pub async fn webhooks(&self, caller: Caller<'_>) -> Result<Vec<Webhook>, AuthError> {
        self.authorize(caller, Permission::WebhooksWrite).await?;
        Ok(self.store.webhooks().await?)
    }

    /// Deletes a webhook and its pending deliveries and dead letters
    /// (`webhooks:write`). `NotFound` when there is none; `Conflict` for one
    /// of `[[webhooks.endpoints]]` (the configuration owns it).
    pub async fn delete_webhook(
        &self,
        caller: Caller<'_>,
        id: Uuid,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        let actor = self.authorize(caller, Permission::WebhooksWrite).await?;
        if !self.store.delete_webhook(id).await? {
            return Err(self.refused(id).await);
        }
        self.record_action(
            actor,
            EventKind::WebhookDeleted,
            client,
            serde_json::json!({ "webhook_id": id }),
        )
        .await;
        Ok(())
    }

    /// Gives a webhook a new secret (`webhooks:write`), shown this once; the
    /// previous one keeps signing, alongside, for `webhooks.secret_overlap_seconds`
    /// so receivers can switch without losing a delivery. `NotFound` /
    /// `Conflict` as [`Self::delete_webhook`].
    pub async fn rotate_webhook_secret(
        &self,
        caller: Caller<'_>,
        id: Uuid,
        client: &ClientContext,
    ) -> Result<WebhookWithSecret, AuthError> {
        let actor = self.authorize(caller, Permission::WebhooksWrite).await?;
        let secret = WebhookSecret::generate();
        let until = self.common.now() + self.webhooks.secret_overlap;
        let Some(webhook) = self
            .store
            .rotate_webhook_secret(id, &self.webhooks.seal_secret(id, &secret), until)
            .await?
        else {
            return Err(self.refused(id).await);
        };
        self.record_action(
            actor,
            EventKind::WebhookSecretRotated,
            client,
            serde_json::json!({
                "webhook_id": id,
                "previous_until": crate::time_fmt::format_rfc3339(until),
            }),
        )
        .await;
        Ok(WebhookWithSecret {
            webhook,
            secret: secret.reveal(),
        })
    }

    /// A page of dead letters, oldest first (`events:manage`).
    pub async fn dead_letters(
        &self,
        caller: Caller<'_>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<DeadLetter>, AuthError> {
        self.authorize(caller, Permission::EventsManage).await?;
        let limit = page::limit(limit).ok_or(AuthError::BadQuery("limit"))?;
        let after = cursor_position(&self.cursors, DEAD_LETTERS, "", cursor)?;
        let rows = self.store.dead_letters(after, limit + 1).await?;
        Ok(Page::from_overfetch(rows, limit, |d| {
            self.cursors.make(DEAD_LETTERS, "", d.id)
        }))
    }

    /// Sends a dead letter again, as a new series of attempts
    /// (`events:manage`); `NotFound` when it is not a dead letter (any more).
    pub async fn retry_dead_letter(
        &self,
        caller: Caller<'_>,
        id: Uuid,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        let actor = self.authorize(caller, Permission::EventsManage).await?;
        let letter = self
            .store
            .retry_dead_letter(id, self.common.now())
            .await?
            .ok_or(AuthError::NotFound)?;
        self.record_action(
            actor,
            EventKind::DeadLetterRetried,
            client,
            serde_json::json!({
                "dead_letter_id": letter.id,
                "event_id": letter.event_id,
                "webhook_id": letter.webhook_id,
            }),
        )
        .await;
        Ok(())
    }
}
