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

/// A message waiting in (or taken from) the outbox.
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
