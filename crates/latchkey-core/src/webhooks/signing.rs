//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256
//! of "{id}.{timestamp}.{body}" keyed by the secret's decoded bytes>`, one per
//! valid secret, space-separated (two during a rotation).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

/// The text before the base64 of a secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a secret latchkey makes (256 bits).
const SECRET_BYTES: usize = 32;
/// Fewest decoded bytes accepted in a configured secret (128 bits).
const MIN_SECRET_BYTES: usize = 16;
/// Most decoded bytes accepted in a configured secret.
const MAX_SECRET_BYTES: usize = 64;

/// A webhook signing secret: its key bytes, wiped when dropped; never printed.
#[derive(Clone)]
pub struct WebhookSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

/// Why a secret's text was refused (never echoing it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretProblem {
    /// Not `whsec_` followed by standard base64.
    #[error("must be whsec_ followed by base64")]
    Format,
    /// Fewer than 16 or more than 64 key bytes.
    #[error("must hold 16 to 64 bytes of key")]
    Length,
}

impl WebhookSecret {
    /// A new random secret (32 bytes from the OS generator).
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new(vec![0u8; SECRET_BYTES]);
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The secret `text` writes (`whsec_` + base64, as shown once at creation).
    pub fn parse(text: &str) -> Result<Self, SecretProblem> {
        let encoded = text
            .trim()
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretProblem::Format)?;
        let bytes = Zeroizing::new(
            STANDARD
                .decode(encoded)
                .map_err(|_| SecretProblem::Format)?,
        );
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&bytes.len()) {
            return Err(SecretProblem::Length);
        }
        Ok(Self(bytes))
    }

    /// The secret from its stored key bytes.
    pub fn from_bytes(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(bytes)
    }

    /// Its key bytes (to seal at rest).
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text to show the administrator once: `whsec_` + base64.
    pub fn reveal(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(&*self.0)))
    }

    /// `v1,<signature>` of one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        #[allow(clippy::expect_used)] // HMAC takes a key of any length
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header value: one signature per secret in
/// `secrets` (the current first), space-separated.
pub fn signature_header(
    secrets: &[&WebhookSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_published_example() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_rotation_sends_both_signatures_current_first() {
        let (new, old) = (WebhookSecret::generate(), WebhookSecret::generate());
        let header = signature_header(&[&new, &old], "e1", 7, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts, [new.sign("e1", 7, b"{}"), old.sign("e1", 7, b"{}")]);
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn generated_secrets_round_trip_and_bad_ones_are_refused_without_echo() {
        let secret = WebhookSecret::generate();
        let text = secret.reveal();
        assert!(text.starts_with("whsec_"));
        let again = WebhookSecret::parse(&text).unwrap();
        assert_eq!(again.bytes(), secret.bytes());
        assert_eq!(
            WebhookSecret::parse("MfKQ9r8GKYqr").unwrap_err(),
            SecretProblem::Format
        );
        assert_eq!(
            WebhookSecret::parse("whsec_!!!").unwrap_err(),
            SecretProblem::Format
        );
        assert_eq!(
            WebhookSecret::parse("whsec_AAAA").unwrap_err(),
            SecretProblem::Length
        );
        assert_eq!(format!("{secret:?}"), "WebhookSecret([redacted])");
    }
}
