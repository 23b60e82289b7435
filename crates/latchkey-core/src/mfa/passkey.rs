//! Passkeys (WebAuthn) through webauthn-rs: the relying party, the stored
//! credentials and the short-lived ceremonies between a challenge and its answer.
//!
//! Guarantees: user verification is required; challenges are single use (a
//! ceremony is taken from the store atomically) and expire after
//! [`CEREMONY_TTL`]; the origin and RP id come from `public_url`; a signature
//! counter that does not grow (a cloned authenticator) is refused.

use time::{Duration, OffsetDateTime};
use uuid::Uuid;
use webauthn_rs::prelude::{Url, Webauthn, WebauthnBuilder};

/// How long a challenge may be answered.
pub const CEREMONY_TTL: Duration = Duration::minutes(5);
/// Longest passkey name.
pub const MAX_NAME_CHARS: usize = 64;

/// The relying party: the site passkeys are bound to.
#[derive(Debug, Clone)]
pub struct PasskeyService {
    /// webauthn-rs configured for our RP id and origin.
    pub webauthn: Webauthn,
}

/// Why passkeys cannot be offered for a public URL (said at start, and by
/// `config check`).
#[derive(Debug, thiserror::Error)]
pub enum PasskeySetupError {
    /// The public URL does not parse.
    #[error("not a URL: {0}")]
    NotUrl(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The origin is an IP address, or the RP id is not its host or a parent
    /// domain.
    #[error(
        "passkeys need a domain name: the RP id {rp_id:?} must be the host of {origin} \
         or a parent domain (an IP address cannot be used)"
    )]
    NoDomain {
        /// The relying party id asked for.
        rp_id: String,
        /// The origin (public URL).
        origin: String,
    },
    /// webauthn-rs refused the settings.
    #[error("WebAuthn settings: {0}")]
    Settings(#[source] webauthn_rs::prelude::WebauthnError),
}

impl PasskeyService {
    /// A relying party for `origin` (the public URL) with `rp_id` (its host or a
    /// parent domain) and a display name. Fails when the origin has no domain
    /// name (an IP address) or `rp_id` is not a suffix of it.
    pub fn new(origin: &str, rp_id: &str, rp_name: &str) -> Result<Self, PasskeySetupError> {
        let url = Url::parse(origin).map_err(|e| PasskeySetupError::NotUrl(Box::new(e)))?;
        let no_domain = || PasskeySetupError::NoDomain {
            rp_id: rp_id.to_owned(),
            origin: origin.to_owned(),
        };
        // Refused here, before webauthn-rs, which would log an error of its own
        // for the (dev default) IP-address URL.
        let is_ip = |host: &str| {
            host.trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok()
        };
        if is_ip(url.host_str().unwrap_or_default()) || is_ip(rp_id) {
            return Err(no_domain());
        }
        let webauthn = WebauthnBuilder::new(rp_id, &url)
            .map_err(|_| no_domain())?
            .rp_name(rp_name)
            .timeout(std::time::Duration::from_secs(
                u64::try_from(CEREMONY_TTL.whole_seconds()).unwrap_or(300),
            ))
            .build()
            .map_err(PasskeySetupError::Settings)?;
        Ok(Self { webauthn })
    }
}

/// A registered passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRecord {
    /// UUIDv7 (the id in the API).
    pub id: Uuid,
    /// The owner.
    pub user_id: Uuid,
    /// The authenticator's credential id.
    pub credential_id: Vec<u8>,
    /// The user's label for it.
    pub name: String,
    /// webauthn-rs `Passkey` as JSON (public key, counter, flags): public data.
    pub passkey_json: String,
    /// Signature counter last seen.
    pub counter: u32,
    /// The authenticator may back the key up (a synced passkey).
    pub backup_eligible: bool,
    /// The key is backed up.
    pub backup_state: bool,
    /// Registration time.
    pub created_at: OffsetDateTime,
    /// Last successful use.
    pub last_used_at: Option<OffsetDateTime>,
}

/// What a ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// Registering a new passkey for a signed-in user.
    Register,
    /// The second step of a password sign-in.
    Mfa,
    /// A passwordless sign-in.
    Login,
}

impl CeremonyKind {
    /// Stable text stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Mfa => "mfa",
            Self::Login => "login",
        }
    }

    /// The kind stored as `text`.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Register, Self::Mfa, Self::Login]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// A challenge waiting for its answer, with webauthn-rs's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceremony {
    /// UUIDv7 (the `challenge_id` in the API; for [`CeremonyKind::Mfa`] the id
    /// of the sign-in challenge).
    pub id: Uuid,
    /// The user, when known at the start.
    pub user_id: Option<Uuid>,
    /// What it is for.
    pub kind: CeremonyKind,
    /// webauthn-rs's state as JSON.
    pub state_json: String,
    /// Name for the passkey being registered.
    pub name: Option<String>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// End of validity.
    pub expires_at: OffsetDateTime,
    /// Who started it (`user:<id>`, or `ip:<digest>` for a passwordless
    /// sign-in): each keeps only its newest few open ceremonies.
    pub owner: String,
}

/// Counter and backup flags of a serialized `Passkey` (webauthn-rs keeps them
/// private; the JSON is its documented persistence format).
pub fn passkey_flags(passkey_json: &str) -> (u32, bool, bool) {
    let value: serde_json::Value = serde_json::from_str(passkey_json).unwrap_or_default();
    let cred = &value["cred"];
    (
        cred["counter"]
            .as_u64()
            .and_then(|c| u32::try_from(c).ok())
            .unwrap_or(0),
        cred["backup_eligible"].as_bool().unwrap_or(false),
        cred["backup_state"].as_bool().unwrap_or(false),
    )
}

#[cfg(test)]
mod ip_tests {
    use super::PasskeyService;

    #[test]
    fn an_ip_address_is_refused_with_a_clear_reason() {
        for (origin, rp_id) in [
            ("http://127.0.0.1:8080", "127.0.0.1"),
            ("http://[::1]:8080", "[::1]"),
            ("https://auth.example.com", "192.0.2.1"),
        ] {
            let e = PasskeyService::new(origin, rp_id, "latchkey").unwrap_err();
            assert!(
                matches!(e, super::PasskeySetupError::NoDomain { .. }),
                "{e}"
            );
            assert!(e.to_string().contains("need a domain name"), "{e}");
        }
        assert!(PasskeyService::new("http://localhost:8080", "localhost", "latchkey").is_ok());
        assert!(PasskeyService::new("https://auth.example.com", "example.com", "x").is_ok());
    }
}
