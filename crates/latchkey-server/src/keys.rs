//! Signing keys on disk: `<data_dir>/keys/<unix-seconds>.<alg>.der`, PKCS#8 DER,
//! mode 0600 in a 0700 directory. The newest file is the current key; an older key
//! stays in the ring (verifying and published in the JWKS) until every token it
//! can have signed has expired, i.e. until its successor is older than the access
//! token lifetime plus the verification leeway.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use latchkey_core::clock::Clock;
use latchkey_core::token::{ActiveKeys, Algorithm, KeyRing, SigningKey};
use time::{Duration, OffsetDateTime};

use crate::config::create_private_dir;

/// Why the key directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading or writing the directory failed.
    #[error("key directory {path}: {source}")]
    Io {
        /// The path concerned.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A key file does not hold a usable key of its algorithm.
    #[error("key file {0} is not a valid key")]
    Invalid(PathBuf),
    /// Generating a key failed.
    #[error("cannot generate a signing key")]
    Generate,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The keys directory inside the data directory.
pub fn key_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("keys")
}

fn alg_tag(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::EdDSA => "eddsa",
        Algorithm::ES256 => "es256",
        Algorithm::RS256 => "rs256",
    }
}

/// Key files of `alg`, oldest first, with their creation time.
fn list(dir: &Path, alg: Algorithm) -> Result<Vec<(i64, PathBuf)>, KeyFileError> {
    let mut found = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(io(dir)(e)),
    };
    let suffix = format!(".{}.der", alg_tag(alg));
    for entry in entries {
        let path = entry.map_err(io(dir))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(stamp) = name
            .strip_suffix(&suffix)
            .and_then(|s| s.parse::<i64>().ok())
        {
            found.push((stamp, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Writes a new key of `alg` created at `now`; it becomes current at once for
/// servers that load the ring afterwards.
pub fn rotate(dir: &Path, alg: Algorithm, now: OffsetDateTime) -> Result<SigningKey, KeyFileError> {
    create_private_dir(dir).map_err(io(dir))?;
    let key = SigningKey::generate(alg).map_err(|_| KeyFileError::Generate)?;
    let mut stamp = now.unix_timestamp();
    // Two rotations within a second still get distinct, ordered names.
    if let Some((last, _)) = list(dir, alg)?.last() {
        stamp = stamp.max(last + 1);
    }
    let path = dir.join(format!("{stamp}.{}.der", alg_tag(alg)));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(io(&path))?;
    file.write_all(key.pkcs8_der()).map_err(io(&path))?;
    file.sync_all().map_err(io(&path))?;
    Ok(key)
}

/// The files that belong in the ring at `now`, oldest first: every key of `alg`
/// except those whose successor is older than `retire_after`. Lists the
/// directory only; reads no key.
fn ring_files(
    dir: &Path,
    alg: Algorithm,
    now: OffsetDateTime,
    retire_after: Duration,
) -> Result<Vec<PathBuf>, KeyFileError> {
    let files = list(dir, alg)?;
    Ok(files
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            let successor_created = files.get(i + 1).map(|(stamp, _)| *stamp);
            successor_created
                .is_none_or(|s| now.unix_timestamp() - s <= retire_after.whole_seconds())
        })
        .map(|(_, (_, path))| path.clone())
        .collect())
}

/// Reads and checks the keys in `files` (oldest first); the last is current.
fn load(alg: Algorithm, files: &[PathBuf]) -> Result<KeyRing, KeyFileError> {
    let mut keys = Vec::new();
    for path in files {
        let der = zeroize::Zeroizing::new(fs::read(path).map_err(io(path))?);
        keys.push(
            SigningKey::from_pkcs8_der(alg, &der)
                .map_err(|_| KeyFileError::Invalid(path.clone()))?,
        );
    }
    let current = keys.pop().ok_or(KeyFileError::Generate)?;
    keys.reverse();
    KeyRing::new(current, keys).map_err(|_| KeyFileError::Generate)
}

/// Loads the ring for `alg`, generating the first key when there is none.
/// Keys whose successor is older than `retire_after` are left out.
pub fn load_or_create(
    dir: &Path,
    alg: Algorithm,
    now: OffsetDateTime,
    retire_after: Duration,
) -> Result<KeyRing, KeyFileError> {
    if list(dir, alg)?.is_empty() {
        rotate(dir, alg, now)?;
    }
    load(alg, &ring_files(dir, alg, now, retire_after)?)
}

/// How often a running server re-reads the key directory.
pub const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Keeps `active` in step with the key directory until `stop` turns true: a key
/// added by `latchkey keys rotate` (in any process) becomes current within
/// [`WATCH_INTERVAL`], and retired keys leave the JWKS. A directory that cannot be
/// read keeps the ring in use (and logs why).
pub async fn watch(
    dir: PathBuf,
    alg: Algorithm,
    active: Arc<ActiveKeys>,
    clock: Arc<dyn Clock>,
    retire_after: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    // Keys are read (and self-tested) only when the set of ring files changes: a
    // rotation adds one, a retirement drops one. Otherwise a tick is one listing.
    let mut loaded_files: Option<Vec<PathBuf>> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(WATCH_INTERVAL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let dir2 = dir.clone();
        let now = clock.now();
        let previous = loaded_files.clone();
        let task = tokio::task::spawn_blocking(
            move || -> Result<Option<(Vec<PathBuf>, KeyRing)>, KeyFileError> {
                let files = ring_files(&dir2, alg, now, retire_after)?;
                if previous.as_ref() == Some(&files) || files.is_empty() {
                    return Ok(None);
                }
                let ring = load(alg, &files)?;
                Ok(Some((files, ring)))
            },
        );
        match task.await {
            Ok(Ok(Some((files, ring)))) => {
                let before = active.ring();
                if before.current_kid() != ring.current_kid() || before.jwks() != ring.jwks() {
                    tracing::info!(kid = ring.current_kid(), "signing keys reloaded");
                    active.replace(ring);
                }
                loaded_files = Some(files);
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "signing keys not reloaded"),
            Err(e) => tracing::warn!(error = %e, "signing key reload task failed"),
        }
    }
}
