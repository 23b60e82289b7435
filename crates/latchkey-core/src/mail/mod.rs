//! Outgoing mail: the message, the `Mailer` port that delivers it, and the
//! one-time tokens mailed as links.

pub mod templates;

use async_trait::async_trait;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;
use zeroize::Zeroizing;

/// A message in clear: as composed, and as a [`Mailer`] sends it (the outbox
/// keeps it sealed, as [`QueuedMail`]).
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    /// UUIDv7.
    pub id: Uuid,
    /// One recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body_text: String,
    /// HTML alternative of the same text, if any (sent as
    /// `multipart/alternative`).
    pub body_html: Option<String>,
    /// When it was queued.
    pub created_at: OffsetDateTime,
    /// Delivery attempts so far.
    pub attempts: i32,
}

impl std::fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Bodies hold one-time links and recipients are PII: neither is printed.
        f.debug_struct("OutgoingMail")
            .field("id", &self.id)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl OutgoingMail {
    /// A new message to queue now.
    pub fn new(to: &str, subject: &str, body_text: String, now: OffsetDateTime) -> Self {
        Self {
            id: Uuid::now_v7(),
            to: to.to_owned(),
            subject: subject.to_owned(),
            body_text,
            body_html: None,
            created_at: now,
            attempts: 0,
        }
    }

    /// A new message from a rendered template.
    pub fn rendered(to: &str, mail: templates::RenderedMail, now: OffsetDateTime) -> Self {
        Self {
            body_html: Some(mail.html),
            ..Self::new(to, &mail.subject, mail.text, now)
        }
    }
}

/// Purpose of the keyring that seals queued mail bodies.
pub const OUTBOX_SEAL_PURPOSE: &str = "mail-outbox";

/// A message as the outbox keeps it: recipient and subject in clear (they
/// carry no secret), the bodies sealed, because they hold live one-time links
/// (reset, verification, email change) that a copy of the database or a
/// backup must not give away.
#[derive(Clone, PartialEq, Eq)]
pub struct QueuedMail {
    /// UUIDv7 (also the associated data of the sealed body).
    pub id: Uuid,
    /// One recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// The text and HTML bodies.
    pub body: QueuedBody,
    /// When it was queued.
    pub created_at: OffsetDateTime,
    /// Delivery attempts so far.
    pub attempts: i32,
}

impl std::fmt::Debug for QueuedMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuedMail")
            .field("id", &self.id)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// The bodies of a queued message.
#[derive(Clone, PartialEq, Eq)]
pub enum QueuedBody {
    /// Sealed by [`OutboxSeal::seal`]: how every message is queued.
    Sealed(Vec<u8>),
    /// In clear: only read from rows queued by a version that did not seal
    /// (sent as they are, then scrubbed like every other); never written.
    Legacy {
        /// Plain-text body.
        text: String,
        /// HTML alternative.
        html: Option<String>,
    },
}

impl QueuedBody {
    /// The outbox columns `(body_sealed, body_text, body_html)` of this body.
    pub fn columns(&self) -> (Option<&[u8]>, &str, Option<&str>) {
        match self {
            Self::Sealed(sealed) => (Some(sealed), "", None),
            Self::Legacy { text, html } => (None, text, html.as_deref()),
        }
    }

    /// The body stored in those columns: sealed when `body_sealed` is set,
    /// else a row from before sealing.
    pub fn from_columns(sealed: Option<Vec<u8>>, text: String, html: Option<String>) -> Self {
        match sealed {
            Some(sealed) => Self::Sealed(sealed),
            None => Self::Legacy { text, html },
        }
    }
}

/// Seals mail bodies for the outbox and opens them at send time
/// (XChaCha20-Poly1305 under a key derived from the master key for
/// [`OUTBOX_SEAL_PURPOSE`], the message id as associated data: a body copied
/// to another row does not open).
#[derive(Debug)]
pub struct OutboxSeal(crate::seal::Keyring);

/// The sealed form of the bodies (serialized, then sealed).
#[derive(serde::Serialize, serde::Deserialize)]
struct Bodies {
    text: String,
    html: Option<String>,
}

impl OutboxSeal {
    /// Seals with `ring` (built for [`OUTBOX_SEAL_PURPOSE`]).
    pub fn new(ring: crate::seal::Keyring) -> Self {
        Self(ring)
    }

    /// The message as the outbox stores it.
    pub fn seal(&self, mail: &OutgoingMail) -> QueuedMail {
        let bodies = Bodies {
            text: mail.body_text.clone(),
            html: mail.body_html.clone(),
        };
        // Serializing two strings cannot fail.
        let plain = Zeroizing::new(serde_json::to_vec(&bodies).unwrap_or_default());
        drop(bodies);
        QueuedMail {
            id: mail.id,
            to: mail.to.clone(),
            subject: mail.subject.clone(),
            body: QueuedBody::Sealed(self.0.seal(&plain, mail.id.as_bytes())),
            created_at: mail.created_at,
            attempts: mail.attempts,
        }
    }

    /// The message to send. Fails when the body was sealed under a master key
    /// that is no longer configured, or belongs to another row.
    pub fn open(&self, queued: &QueuedMail) -> Result<OutgoingMail, crate::seal::SealError> {
        let (body_text, body_html) = match &queued.body {
            QueuedBody::Sealed(sealed) => {
                let plain = self.0.open(sealed, queued.id.as_bytes())?;
                let bodies: Bodies =
                    serde_json::from_slice(&plain).map_err(|_| crate::seal::SealError::Format)?;
                (bodies.text, bodies.html)
            }
            QueuedBody::Legacy { text, html } => (text.clone(), html.clone()),
        };
        Ok(OutgoingMail {
            id: queued.id,
            to: queued.to.clone(),
            subject: queued.subject.clone(),
            body_text,
            body_html,
            created_at: queued.created_at,
            attempts: queued.attempts,
        })
    }
}

/// Which security notices are mailed (each on by default; the links needed to
/// sign up, verify, reset or change an address are always sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
#[allow(clippy::struct_excessive_bools)]
pub struct Notifications {
    /// A sign-in from a device (browser family and OS) the account had no
    /// session from.
    pub new_device: bool,
    /// Sign-in paused after repeated failures.
    pub account_locked: bool,
    /// Password changed or reset.
    pub password_changed: bool,
    /// Email address changed (to the old address).
    pub email_changed: bool,
    /// A second factor added or removed.
    pub mfa_changed: bool,
    /// A recovery code used.
    pub recovery_code_used: bool,
    /// A session revoked after its refresh token was reused.
    pub refresh_reuse: bool,
}

impl Default for Notifications {
    fn default() -> Self {
        Self {
            new_device: true,
            account_locked: true,
            password_changed: true,
            email_changed: true,
            mfa_changed: true,
            recovery_code_used: true,
            refresh_reuse: true,
        }
    }
}

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// Worth retrying later (connection refused, 4xx).
    #[error("temporary delivery failure: {0}")]
    Transient(String),
    /// Will never succeed (invalid address, 5xx).
    #[error("permanent delivery failure: {0}")]
    Permanent(String),
}

/// Delivers one message. Implementations: the file transport (dev) and SMTP.
#[async_trait]
pub trait Mailer: Send + Sync + std::fmt::Debug {
    /// Delivers `mail` or says why not.
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError>;
}

/// A one-time token mailed as a link: `prefix` + 43 base64url characters of
/// 256-bit randomness; only its SHA-256 is stored.
pub fn new_link_token(prefix: &str) -> (Zeroizing<String>, [u8; 32]) {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    let text = Zeroizing::new(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref())
    ));
    let hash = hash_link_token(&text);
    (text, hash)
}

/// The stored form of a link token.
pub fn hash_link_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal() -> OutboxSeal {
        OutboxSeal::new(crate::seal::Keyring::new(
            OUTBOX_SEAL_PURPOSE,
            b"a master key of at least thirty-two bytes!",
            &[],
        ))
    }

    #[test]
    fn queued_bodies_are_sealed_and_open_only_in_their_row() {
        let seal = seal();
        let mut mail = OutgoingMail::new(
            "ada@example.com",
            "Reset",
            "https://x/reset?token=lk_pr_secret".into(),
            OffsetDateTime::UNIX_EPOCH,
        );
        mail.body_html = Some("<a href=\"lk_pr_secret\">reset</a>".into());
        let queued = seal.seal(&mail);
        let QueuedBody::Sealed(bytes) = &queued.body else {
            panic!("not sealed")
        };
        assert!(!bytes.windows(6).any(|w| w == b"lk_pr_"));
        assert_eq!(seal.open(&queued).unwrap(), mail);
        let moved = QueuedMail {
            id: Uuid::now_v7(),
            ..queued.clone()
        };
        assert!(seal.open(&moved).is_err(), "another row's body");
        let other = OutboxSeal::new(crate::seal::Keyring::new(
            OUTBOX_SEAL_PURPOSE,
            b"another master key, also long enough......",
            &[],
        ));
        assert!(matches!(
            other.open(&queued),
            Err(crate::seal::SealError::UnknownKey(_))
        ));
    }
}
