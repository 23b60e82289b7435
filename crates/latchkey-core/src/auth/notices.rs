//! Composing mail from templates, and the security notices each use case sends.
//!
//! Guarantees: every message is rendered from the templates with the product
//! name, the public URL and the recipient's name (escaped in HTML); a notice
//! turned off in configuration is never queued; a notice that cannot be queued
//! is logged and never fails the operation that caused it.

use minijinja::{context, Value};
use time::OffsetDateTime;

use crate::account::User;
use crate::mail::templates::Template;
use crate::mail::OutgoingMail;
use crate::ports::DeviceSeen;

use super::{Auth, AuthError, ClientContext};

/// A time as mail shows it (RFC 2822, UTC).
pub(crate) fn mail_time(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default()
}

impl Auth {
    /// Renders `template` for `to` with the common values (`product`,
    /// `public_url`, `name`, `time`) and `extra`.
    pub(crate) fn compose(
        &self,
        template: Template,
        to: &str,
        name: Option<&str>,
        extra: Value,
    ) -> Result<OutgoingMail, AuthError> {
        let now = self.clock.now();
        let ctx = context! {
            product => &self.links.product,
            public_url => &self.links.public_url,
            name => name,
            time => mail_time(now),
            ..extra
        };
        let rendered = self
            .links
            .templates
            .render(template, &ctx)
            .map_err(AuthError::Template)?;
        Ok(OutgoingMail::rendered(to, rendered, now))
    }

    /// Queues a security notice to `user` when `enabled`; failures are logged.
    pub(crate) async fn notice(
        &self,
        enabled: bool,
        template: Template,
        user: &User,
        client: Option<&ClientContext>,
        extra: Value,
    ) {
        if !enabled {
            return;
        }
        let ip = client.and_then(|c| c.ip.clone());
        let extra = context! { ip => ip, ..extra };
        let queued = match self.compose(template, &user.email, user.name.as_deref(), extra) {
            Ok(mail) => self
                .store
                .enqueue_mail(&mail)
                .await
                .map_err(AuthError::from),
            Err(e) => Err(e),
        };
        if let Err(e) = queued {
            tracing::warn!(error = %e, template = template.name(), "security notice not queued");
        }
    }

    /// Before a session starts: mails the user when the device (browser family
    /// and OS) has no stored session of theirs, unless it is their first
    /// sign-in ever. Store failures only skip the notice.
    pub(crate) async fn notice_if_new_device(&self, user: &User, client: &ClientContext) {
        if !self.links.notify.new_device {
            return;
        }
        match self.store.device_seen(user.id, &client.fingerprint).await {
            Ok(DeviceSeen::New) => {
                let d = &client.device;
                self.notice(
                    true,
                    Template::NewDevice,
                    user,
                    Some(client),
                    context! { browser => &d.browser, os => &d.os, device_type => &d.kind },
                )
                .await;
            }
            Ok(DeviceSeen::Known | DeviceSeen::FirstSignIn) => {}
            Err(e) => tracing::warn!(error = %e, "new-device check skipped"),
        }
    }
}
