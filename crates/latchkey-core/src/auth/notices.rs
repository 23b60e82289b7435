//! Composing mail from templates, and the security notices each use case sends.
//!
//! Guarantees: every message is rendered from the templates with the product
//! name, the public URL and the recipient's name (escaped in HTML); a notice
//! turned off in configuration is never queued; a notice that cannot be
//! rendered is logged and skipped, never failing the operation that caused it.
//! Notices that report a change (new device, password, second factor, spent
//! recovery code) are rendered first and queued by the store in the change's
//! own transaction: the change and its notice commit or fail together. The
//! others (lock, refresh-token reuse) are queued after their write; failing to
//! queue them is logged and fails nothing.

use minijinja::{context, Value};
use time::OffsetDateTime;

use crate::account::User;
use crate::mail::templates::Template;
use crate::mail::{OutgoingMail, QueuedMail};

use super::common::Common;
use super::{AuthError, ClientContext};

/// A time as mail shows it (RFC 2822, UTC).
pub(crate) fn mail_time(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default()
}

/// The name a mail to `user`'s address may greet with: only once the address
/// is verified (until then the name was chosen by whoever typed the address,
/// perhaps not its owner: content spoofing), and only a name a mail client
/// cannot turn into a link (nothing like a URL, a domain or an address).
pub(crate) fn mail_name(user: &User) -> Option<&str> {
    user.email_verified_at?;
    user.name.as_deref().filter(|name| !linkable(name))
}

/// Whether mail clients could render `text` as a link: a scheme (`://`), an
/// `@`, `www`, or a dot between two word characters (`evil.example`).
fn linkable(text: &str) -> bool {
    let lower = text.to_lowercase();
    if lower.contains("://") || lower.contains('@') || lower.contains("www") {
        return true;
    }
    let chars: Vec<char> = lower.chars().collect();
    chars.windows(3).any(|w| {
        (w[1] == '.' || w[1] == '\u{ff0e}' || w[1] == '\u{3002}')
            && w[0].is_alphanumeric()
            && w[2].is_alphanumeric()
    })
}

impl Common {
    /// Renders `template` for `to` with the common values (`product`,
    /// `public_url`, `name`, `time`) and `extra`, sealed for the outbox (the
    /// bodies of queued mail never reach the database in clear).
    pub(crate) fn compose(
        &self,
        template: Template,
        to: &str,
        name: Option<&str>,
        extra: Value,
    ) -> Result<QueuedMail, AuthError> {
        let now = self.now();
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
        Ok(self
            .links
            .outbox
            .seal(&OutgoingMail::rendered(to, rendered, now)))
    }

    /// Renders a security notice to `user` when `enabled`, for the caller to
    /// queue with the change it reports; `None` when turned off or when the
    /// template fails (logged: a notice never fails its operation).
    pub(crate) fn notice_mail(
        &self,
        enabled: bool,
        template: Template,
        user: &User,
        client: Option<&ClientContext>,
        extra: Value,
    ) -> Option<QueuedMail> {
        if !enabled {
            return None;
        }
        let ip = client.and_then(|c| c.ip.clone());
        let extra = context! { ip => ip, ..extra };
        match self.compose(template, &user.email, mail_name(user), extra) {
            Ok(mail) => Some(mail),
            Err(e) => {
                tracing::warn!(error = %e, template = template.name(), "security notice not rendered");
                None
            }
        }
    }

    /// Queues a security notice on its own, for notices that follow a write
    /// made elsewhere (a lock, a detected refresh-token reuse); failures are
    /// logged.
    pub(crate) async fn notice(
        &self,
        enabled: bool,
        template: Template,
        user: &User,
        client: Option<&ClientContext>,
        extra: Value,
    ) {
        let Some(mail) = self.notice_mail(enabled, template, user, client, extra) else {
            return;
        };
        if let Err(e) = self.store.enqueue_mail(&mail).await {
            tracing::warn!(error = %e, template = template.name(), "security notice not queued");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::linkable;

    #[test]
    fn names_that_read_as_links_are_told_apart() {
        for name in [
            "Ada Lovelace",
            "J. R. R. Tolkien",
            "Zoë",
            "李小龍",
            "O'Brien",
            "Dr.",
            "3.5",
        ] {
            assert_eq!(linkable(name), name == "3.5", "{name}");
        }
        for name in [
            "Visit evil.example",
            "http://x",
            "HTTPS://EVIL",
            "www evil",
            "a@b",
            "pay.pal",
            "evil\u{ff0e}example",
        ] {
            assert!(linkable(name), "{name}");
        }
    }
}
