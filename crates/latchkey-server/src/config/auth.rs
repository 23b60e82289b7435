//! `[auth]`, `[sessions]`, `[tokens]` and `[password]`: the sign-in policy.

use serde::{Deserialize, Serialize};

/// `[auth]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Refuse login (403 `email_not_verified`) until the address is verified.
    pub require_email_verification: bool,
    /// Answer sign-up identically whether or not the address exists.
    pub enumeration_protection: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            require_email_verification: true,
            enumeration_protection: true,
        }
    }
}

/// `[sessions]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// A session unused this long ends (each refresh counts as use).
    pub idle_timeout_seconds: u64,
    /// Hard lifetime of a session.
    pub absolute_timeout_seconds: u64,
    /// Hard lifetime with `remember_me`.
    pub remember_me_timeout_seconds: u64,
    /// Live sessions per user; the oldest is revoked when a new one starts.
    pub max_per_user: u32,
    /// Refuse (and revoke) a refresh whose device fingerprint changed.
    pub bind_device: bool,
    /// Second factors (TOTP, passkeys) can be added, and passkeys removed, only
    /// this long after the session signed in (removing TOTP asks for the
    /// password instead); 0: any time.
    pub privileged_max_age_seconds: u64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self {
            idle_timeout_seconds: 7 * 24 * 3600,
            absolute_timeout_seconds: 7 * 24 * 3600,
            remember_me_timeout_seconds: 30 * 24 * 3600,
            max_per_user: 5,
            bind_device: false,
            privileged_max_age_seconds: 15 * 60,
        }
    }
}

/// `[tokens]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    /// `EdDSA` (Ed25519), `ES256` or `RS256`.
    pub algorithm: String,
    /// Access-token lifetime.
    pub access_ttl_seconds: u64,
    /// `iss` claim; unset: the public URL.
    pub issuer: Option<String>,
    /// `aud` claim expected by resource servers.
    pub audience: String,
    /// A rotated refresh token presented again within this many seconds is
    /// refused without revoking the family (0: every reuse revokes).
    pub refresh_reuse_grace_seconds: u64,
    /// Cookie mode: a refresh cookie spent by a concurrent refresh (another tab
    /// of the same browser) within this many seconds gets a fresh access token
    /// for its session instead of revoking it (0: every reuse revokes; at most
    /// 60).
    pub cookie_refresh_grace_seconds: u64,
    /// Where the private signing keys live: `files` (PKCS#8, mode 0600, in
    /// `<data_dir>/keys`), `database` (sealed with `secrets.master_key`, shared by
    /// every node) or `auto` (default: files in dev, database in production).
    pub key_storage: KeyStorageKind,
}

/// `tokens.key_storage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStorageKind {
    /// Files in dev, database in production.
    #[default]
    Auto,
    /// `<data_dir>/keys/*.der`, unencrypted (dev).
    Files,
    /// The `signing_keys` table, encrypted with the master key.
    Database,
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            algorithm: "EdDSA".into(),
            access_ttl_seconds: 15 * 60,
            issuer: None,
            audience: "latchkey".into(),
            refresh_reuse_grace_seconds: 0,
            cookie_refresh_grace_seconds: 10,
            key_storage: KeyStorageKind::Auto,
        }
    }
}

/// `[password]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
// Independent on/off rules, each a documented setting: not a state machine.
#[allow(clippy::struct_excessive_bools)]
pub struct PasswordConfig {
    /// Shortest accepted password, in characters.
    pub min_length: usize,
    /// Longest accepted password, in characters.
    pub max_length: usize,
    /// Argon2id memory cost in KiB (OWASP: 19456).
    pub argon2_memory_kib: u32,
    /// Argon2id iterations (OWASP: 2).
    pub argon2_iterations: u32,
    /// Argon2id lanes (OWASP: 1).
    pub argon2_parallelism: u32,
    /// Hashes computed at once; 0 = the number of cores. Others queue.
    pub max_concurrent_hashes: usize,
    /// Lowest accepted zxcvbn strength score, 0–4 (0 turns the rule off).
    pub min_strength: u8,
    /// Require a lower-case letter (composition rules are off by default, as
    /// NIST SP 800-63B advises; turn them on where a standard demands them).
    pub require_lowercase: bool,
    /// Require an upper-case letter.
    pub require_uppercase: bool,
    /// Require a digit.
    pub require_digit: bool,
    /// Require a symbol (neither letter, digit nor space).
    pub require_symbol: bool,
    /// How many recent passwords (the current one included) cannot be reused
    /// (0: no history).
    pub history: u32,
    /// Breached-password check: `api` (k-anonymity range API), `file` (offline
    /// corpus) or `off`.
    pub breach_check: BreachMode,
    /// Range-API base URL; the 5-hex-digit SHA-1 prefix is appended.
    pub breach_api_url: String,
    /// Time limit of one range-API call.
    pub breach_timeout_ms: u64,
    /// When the check cannot answer: accept the password (`true`, logged) or
    /// answer `503` (`false`).
    pub breach_fail_open: bool,
    /// `file` mode: `HASH[:COUNT]` lines (SHA-1, hex), loaded at start.
    pub breach_file: Option<std::path::PathBuf>,
}

/// `password.breach_check`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BreachMode {
    /// The range API (`password.breach_api_url`).
    #[default]
    Api,
    /// An offline corpus file (`password.breach_file`).
    File,
    /// No check.
    Off,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            min_length: 12,
            max_length: 128,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            max_concurrent_hashes: 0,
            min_strength: 3,
            require_lowercase: false,
            require_uppercase: false,
            require_digit: false,
            require_symbol: false,
            history: 5,
            breach_check: BreachMode::Api,
            breach_api_url: "https://api.pwnedpasswords.com/range/".into(),
            breach_timeout_ms: 2_000,
            breach_fail_open: true,
            breach_file: None,
        }
    }
}

/// `[cleanup]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CleanupConfig {
    /// Seconds between background cleanups of expired data (0: never; run
    /// `latchkey cleanup` from a scheduler instead).
    pub interval_seconds: u64,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        Self {
            interval_seconds: 3600,
        }
    }
}

/// `[introspection]`: resource servers allowed to call `POST /v1/introspect`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntrospectionConfig {
    /// Clients authenticating with HTTP Basic (`id:secret`).
    pub clients: Vec<IntrospectionClient>,
}

/// One resource-server client. Only the SHA-256 of its secret is configured
/// (secrets are long random strings, e.g. `openssl rand -base64 32`; hash with
/// `printf %s "$SECRET" | sha256sum`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionClient {
    /// Client id (the Basic user name).
    pub id: String,
    /// Lower-case hex SHA-256 of the client secret.
    pub secret_sha256: String,
}

/// `[lockout]`: brute-force defence on login.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutConfig {
    /// Consecutive failed sign-ins per email (known or not) that lock it; 0
    /// turns lockout off.
    pub threshold: u32,
    /// Length of the first lock; each further lock doubles it.
    pub base_seconds: u64,
    /// Longest lock.
    pub max_seconds: u64,
}

impl Default for LockoutConfig {
    fn default() -> Self {
        Self {
            threshold: 5,
            base_seconds: 15 * 60,
            max_seconds: 24 * 3600,
        }
    }
}
