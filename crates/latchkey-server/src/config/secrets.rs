//! Server secrets: where each comes from and whether it is strong enough.
//!
//! Every secret can be given inline (`secrets.NAME`, `LATCHKEY_SECRETS__NAME`) or as a
//! file path (`secrets.NAME_file`, `LATCHKEY_SECRETS__NAME_FILE`). In dev, a secret that
//! is not configured is generated once (256 bits from the OS RNG) into
//! `<data_dir>/secrets/NAME` with mode 0600, so restarts keep sessions valid. In
//! production a missing, short or placeholder-looking secret refuses start-up.
//! No message here ever contains a secret's value.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::{Config, Mode, Problem, Secret};

/// Minimum length of a configured secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Words that mark a value someone meant to replace.
const PLACEHOLDERS: [&str; 8] = [
    "change",
    "secret",
    "example",
    "placeholder",
    "replace",
    "default",
    "password",
    "dummy",
];

/// `[secrets]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecretsConfig {
    /// Encrypts data at rest that must be recovered (signing keys, TOTP seeds).
    pub master_key: Option<Secret>,
    /// File holding `master_key`.
    pub master_key_file: Option<PathBuf>,
    /// Master keys used before the current one: data they sealed stays readable
    /// (and `latchkey keys reencrypt` moves it to the current key); nothing new
    /// is sealed with them.
    pub previous_master_keys: Vec<Secret>,
    /// File with one previous master key per line (instead of, or with,
    /// `previous_master_keys`).
    pub previous_master_keys_file: Option<PathBuf>,
    /// Keys the HMACs of CSRF tokens and device cookies.
    pub hmac_key: Option<Secret>,
    /// File holding `hmac_key`.
    pub hmac_key_file: Option<PathBuf>,
}

/// The secrets the server runs with, wherever they came from.
#[derive(Debug, Clone)]
pub struct ResolvedSecrets {
    /// See [`SecretsConfig::master_key`].
    pub master_key: Secret,
    /// See [`SecretsConfig::hmac_key`].
    pub hmac_key: Secret,
    /// See [`SecretsConfig::previous_master_keys`], oldest last.
    pub previous_master_keys: Vec<Secret>,
    /// `metrics.bearer_token` (inline or from its file), if set.
    pub metrics_bearer_token: Option<Secret>,
}

impl ResolvedSecrets {
    /// The keyring of `purpose`: seals with the master key, opens with it and
    /// every previous master key.
    pub fn keyring(&self, purpose: &str) -> latchkey_core::seal::Keyring {
        let previous: Vec<&[u8]> = self
            .previous_master_keys
            .iter()
            .map(|k| k.expose().as_bytes())
            .collect();
        latchkey_core::seal::Keyring::new(purpose, self.master_key.expose().as_bytes(), &previous)
    }
}

/// The configured previous master keys (inline first, then the file's lines).
fn previous_master_keys(cfg: &SecretsConfig) -> Result<Vec<Secret>, Problem> {
    let mut keys = cfg.previous_master_keys.clone();
    if let Some(path) = &cfg.previous_master_keys_file {
        let text = fs::read_to_string(path).map_err(|e| {
            Problem::new(
                "secrets.previous_master_keys_file",
                format!("cannot read {}: {}", path.display(), e.kind()),
            )
        })?;
        keys.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(Secret::new),
        );
    }
    Ok(keys)
}

/// One named secret and its two configuration slots.
struct Slot<'a> {
    name: &'static str,
    inline: Option<&'a Secret>,
    file: Option<&'a PathBuf>,
}

fn slots(cfg: &SecretsConfig) -> [Slot<'_>; 2] {
    [
        Slot {
            name: "master_key",
            inline: cfg.master_key.as_ref(),
            file: cfg.master_key_file.as_ref(),
        },
        Slot {
            name: "hmac_key",
            inline: cfg.hmac_key.as_ref(),
            file: cfg.hmac_key_file.as_ref(),
        },
    ]
}

/// Names of every secret key (`master_key`, ...), for the env loader.
pub(super) fn secret_names() -> [&'static str; 2] {
    slots(&SecretsConfig::default()).map(|s| s.name)
}

/// Reads the configured value of a slot, if it has one.
fn configured(slot: &Slot<'_>) -> Result<Option<Secret>, Problem> {
    read_secret(&format!("secrets.{}", slot.name), slot.inline, slot.file)
}

/// Reads a secret configured inline (`key`) or as a file (`key_file`, trailing line
/// break dropped); both set is a problem. Messages never contain the value.
pub(super) fn read_secret(
    key: &str,
    inline: Option<&Secret>,
    file: Option<&PathBuf>,
) -> Result<Option<Secret>, Problem> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(Problem::new(
            key,
            format!("set either {key} or {key}_file, not both"),
        )),
        (Some(v), None) => Ok(Some(v.clone())),
        (None, Some(path)) => match fs::read_to_string(path) {
            Ok(text) => Ok(Some(Secret::new(text.trim_end_matches(['\r', '\n'])))),
            Err(e) => Err(Problem::new(
                format!("{key}_file"),
                format!("cannot read {}: {}", path.display(), e.kind()),
            )),
        },
        (None, None) => Ok(None),
    }
}

/// Why a secret value looks unsafe, if it does. Checks length, placeholder words and
/// low variety (`aaaa...`, `abcabc...`).
pub fn weakness(value: &str) -> Option<&'static str> {
    if value.len() < MIN_SECRET_BYTES {
        return Some("is shorter than 32 bytes: generate one with `openssl rand -base64 48`");
    }
    let lower = value.to_ascii_lowercase();
    if PLACEHOLDERS.iter().any(|w| lower.contains(w)) {
        return Some("looks like a placeholder: generate one with `openssl rand -base64 48`");
    }
    let mut distinct: Vec<char> = value.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 8 || is_periodic(value.as_bytes()) {
        return Some(
            "repeats too few characters to be random: generate one with `openssl rand -base64 48`",
        );
    }
    None
}

/// Whether the bytes are one short unit (≤ 16 bytes) repeated.
fn is_periodic(bytes: &[u8]) -> bool {
    (1..=16.min(bytes.len() / 2)).any(|p| bytes.iter().enumerate().all(|(i, b)| *b == bytes[i % p]))
}

/// Problems with the secrets, without creating anything: in dev a missing secret is
/// fine (it will be generated) and a weak one is only a warning.
pub(super) fn check(cfg: &Config, problems: &mut Vec<Problem>, warnings: &mut Vec<String>) {
    for slot in slots(&cfg.secrets) {
        let key = format!("secrets.{}", slot.name);
        match configured(&slot) {
            Err(p) => problems.push(p),
            Ok(None) if cfg.mode == Mode::Production => problems.push(Problem::new(
                key.clone(),
                format!(
                    "is not set: set LATCHKEY_SECRETS__{} (or ..._FILE) to 32+ random bytes",
                    slot.name.to_ascii_uppercase()
                ),
            )),
            Ok(None) => {}
            Ok(Some(value)) => {
                if let Some(why) = weakness(value.expose()) {
                    if cfg.mode == Mode::Production {
                        problems.push(Problem::new(key, why));
                    } else {
                        warnings.push(format!("{key} {why}"));
                    }
                }
            }
        }
    }
    match previous_master_keys(&cfg.secrets) {
        Err(p) => problems.push(p),
        Ok(keys) => {
            if keys.iter().any(|k| k.expose().len() < MIN_SECRET_BYTES) {
                problems.push(Problem::new(
                    "secrets.previous_master_keys",
                    "every previous master key is at least 32 bytes (as the master key was)",
                ));
            }
        }
    }
}

/// The secrets to run with: configured ones, else (dev only) the ones kept in
/// `<data_dir>/secrets/`, generated on first start. Call after validation passed.
pub fn resolve(cfg: &Config) -> Result<ResolvedSecrets, Problem> {
    resolve_reporting(cfg).map(|(secrets, _)| secrets)
}

/// Where a resolved secret came from (never its value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretOrigin {
    /// Configured inline, in the environment or as a file.
    Configured,
    /// Dev: read from `<data_dir>/secrets/`, generated on an earlier start.
    KeptFromEarlierStart,
    /// Dev: generated by this start into `<data_dir>/secrets/`.
    GeneratedNow,
}

/// Where each named secret came from.
pub type SecretOrigins = Vec<(&'static str, SecretOrigin)>;

/// [`resolve`], also telling where each secret (`master_key`, `hmac_key`) came from.
pub fn resolve_reporting(cfg: &Config) -> Result<(ResolvedSecrets, SecretOrigins), Problem> {
    let [master, hmac] = slots(&cfg.secrets).map(|slot| obtain(cfg, &slot).map(|o| (slot.name, o)));
    let ((master_name, (master_key, master_origin)), (hmac_name, (hmac_key, hmac_origin))) =
        (master?, hmac?);
    Ok((
        ResolvedSecrets {
            master_key,
            hmac_key,
            previous_master_keys: previous_master_keys(&cfg.secrets)?,
            metrics_bearer_token: read_secret(
                "metrics.bearer_token",
                cfg.metrics.bearer_token.as_ref(),
                cfg.metrics.bearer_token_file.as_ref(),
            )?,
        },
        vec![(master_name, master_origin), (hmac_name, hmac_origin)],
    ))
}

fn obtain(cfg: &Config, slot: &Slot<'_>) -> Result<(Secret, SecretOrigin), Problem> {
    if let Some(value) = configured(slot)? {
        return Ok((value, SecretOrigin::Configured));
    }
    let key = format!("secrets.{}", slot.name);
    if cfg.mode == Mode::Production {
        return Err(Problem::new(key, "is not set"));
    }
    load_or_generate(&cfg.data_dir.join("secrets"), slot.name).map_err(|e| {
        Problem::new(
            key,
            format!("cannot keep the generated dev secret in the data directory: {e}"),
        )
    })
}

/// Reads `dir/name`, creating it with 256 fresh random bits (base64url) if missing.
/// The directory is 0700 and the file 0600; creation is exclusive, so two processes
/// starting at once end up with the same secret.
fn load_or_generate(dir: &Path, name: &str) -> std::io::Result<(Secret, SecretOrigin)> {
    let path = dir.join(name);
    if let Ok(text) = fs::read_to_string(&path) {
        return Ok((
            Secret::new(text.trim_end()),
            SecretOrigin::KeptFromEarlierStart,
        ));
    }
    create_private_dir(dir)?;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    zeroize::Zeroize::zeroize(&mut bytes);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(value.as_bytes())?;
            file.sync_all()?;
            Ok((Secret::new(value), SecretOrigin::GeneratedNow))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok((
            Secret::new(fs::read_to_string(&path)?.trim_end()),
            SecretOrigin::KeptFromEarlierStart,
        )),
        Err(e) => Err(e),
    }
}

/// Creates a directory (and parents) readable only by its owner.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_secrets_are_named() {
        assert!(weakness("short").is_some());
        assert!(weakness("please-change-me-please-change-me-please").is_some());
        assert!(weakness("my-Super-SECRET-value-that-is-long-enough").is_some());
        assert!(weakness(&"a".repeat(64)).is_some());
        assert!(weakness(&"abc123".repeat(10)).is_some());
        assert!(weakness("k3J9xQ2mVb7LwZp4Rt8YhN1cFs6DgE0uAiO5eWqTy").is_none());
    }

    #[test]
    fn dev_secret_is_generated_once_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let (first, origin) = load_or_generate(&dir.path().join("secrets"), "hmac_key").unwrap();
        assert_eq!(origin, SecretOrigin::GeneratedNow);
        let (second, origin) = load_or_generate(&dir.path().join("secrets"), "hmac_key").unwrap();
        assert_eq!(origin, SecretOrigin::KeptFromEarlierStart);
        assert_eq!(first.expose(), second.expose());
        assert_eq!(first.expose().len(), 43);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = fs::metadata(dir.path().join("secrets/hmac_key")).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
            let dmeta = fs::metadata(dir.path().join("secrets")).unwrap();
            assert_eq!(dmeta.permissions().mode() & 0o777, 0o700);
        }
    }
}
