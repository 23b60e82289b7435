//! Where the access-token signing keys live, and keeping a running server's
//! ring in step with them.
//!
//! Two storages, one rule: the newest key of the configured algorithm is current;
//! an older key stays in the ring (verifying and published in the JWKS) until
//! every token it can have signed has expired, i.e. until its successor is older
//! than the access token lifetime plus the verification leeway.
//!
//! - Files (dev): `<data_dir>/keys/<unix-seconds>.<alg>.der`, PKCS#8 DER, mode
//!   0600 in a 0700 directory.
//! - Database (production): the `signing_keys` table, each private key sealed
//!   with a key derived from `secrets.master_key` and its kid as associated data;
//!   every node sharing the database shares the keys.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use latchkey_core::clock::Clock;
use latchkey_core::ports::{Store, StoreError, StoredSigningKey};
use latchkey_core::seal::{Keyring, SealError};
use latchkey_core::token::{ActiveKeys, Algorithm, KeyRing, SigningKey};
use time::{Duration, OffsetDateTime};

use crate::config::create_private_dir;

/// Why the signing keys could not be loaded or rotated.
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
    /// A stored key cannot be decrypted (another master key, or tampered with).
    #[error("signing key {kid} in the database cannot be opened: {source}")]
    Sealed {
        /// The key.
        kid: String,
        /// Why.
        #[source]
        source: SealError,
    },
    /// A stored key decrypts but is not a key of its algorithm.
    #[error("signing key {0} in the database is not a valid key")]
    InvalidStored(String),
    /// The database failed.
    #[error("signing keys in the database: {0}")]
    Store(#[from] StoreError),
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

/// Writes a new key file of `alg` created at `now`, then deletes the files of
/// keys that left the ring (no private key is kept longer than needed).
fn rotate_file(
    dir: &Path,
    alg: Algorithm,
    now: OffsetDateTime,
    retire_after: Duration,
) -> Result<SigningKey, KeyFileError> {
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
    // The new key is in place: a file that cannot be deleted is reported, not
    // turned into a failed rotation (a retry would add yet another key). The
    // ring leaves it out either way; the next rotation tries again.
    let retired = ring_files(dir, alg, now, retire_after).and_then(|keep| {
        Ok(list(dir, alg)?
            .into_iter()
            .map(|(_, path)| path)
            .filter(|path| !keep.contains(path))
            .collect::<Vec<_>>())
    });
    match retired {
        Ok(paths) => {
            for path in paths {
                if let Err(e) = fs::remove_file(&path) {
                    tracing::warn!(file = %path.display(), error = %e, "retired signing key file not deleted");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "retired signing key files not listed"),
    }
    Ok(key)
}

/// Indexes of the entries (created-at, oldest first) that belong in the ring at
/// `now`: every key except those whose successor is older than `retire_after`.
fn in_ring(created: &[OffsetDateTime], now: OffsetDateTime, retire_after: Duration) -> Vec<usize> {
    (0..created.len())
        .filter(|i| {
            created
                .get(i + 1)
                .is_none_or(|successor| now - *successor <= retire_after)
        })
        .collect()
}

/// The key files that belong in the ring at `now`, oldest first. Lists the
/// directory only; reads no key.
fn ring_files(
    dir: &Path,
    alg: Algorithm,
    now: OffsetDateTime,
    retire_after: Duration,
) -> Result<Vec<PathBuf>, KeyFileError> {
    let files = list(dir, alg)?;
    let created: Vec<OffsetDateTime> = files
        .iter()
        .map(|(stamp, _)| {
            OffsetDateTime::from_unix_timestamp(*stamp).unwrap_or(OffsetDateTime::UNIX_EPOCH)
        })
        .collect();
    Ok(in_ring(&created, now, retire_after)
        .into_iter()
        .map(|i| files[i].1.clone())
        .collect())
}

/// Reads and checks the keys in `files` (oldest first); the last is current.
fn load_files(alg: Algorithm, files: &[PathBuf]) -> Result<KeyRing, KeyFileError> {
    let mut keys = Vec::new();
    for path in files {
        let der = zeroize::Zeroizing::new(fs::read(path).map_err(io(path))?);
        keys.push(
            SigningKey::from_pkcs8_der(alg, &der)
                .map_err(|_| KeyFileError::Invalid(path.clone()))?,
        );
    }
    ring_of(keys)
}

/// A ring from keys oldest first: the last is current.
fn ring_of(mut keys: Vec<SigningKey>) -> Result<KeyRing, KeyFileError> {
    let current = keys.pop().ok_or(KeyFileError::Generate)?;
    keys.reverse();
    KeyRing::new(current, keys).map_err(|_| KeyFileError::Generate)
}

/// Associated data sealed with a stored key: a ciphertext moved to another kid
/// does not open.
pub(crate) fn seal_aad(kid: &str) -> Vec<u8> {
    format!("latchkey signing key {kid}").into_bytes()
}

/// The purpose under which the master key seals signing keys.
pub const SEAL_PURPOSE: &str = "signing-keys";

/// Where the signing keys live (see the module documentation).
#[derive(Clone)]
pub enum KeyStorage {
    /// PKCS#8 files in this directory.
    Files(PathBuf),
    /// Sealed rows in the database.
    Database {
        /// The store.
        store: Arc<dyn Store>,
        /// Seals and opens the private keys.
        seal: Arc<Keyring>,
    },
}

impl std::fmt::Debug for KeyStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Files(dir) => f.debug_tuple("Files").field(dir).finish(),
            Self::Database { store, .. } => {
                f.debug_tuple("Database").field(&store.backend()).finish()
            }
        }
    }
}

/// What a ring was loaded from: file paths or kids (a reload happens only when
/// this changes).
type RingSource = Vec<String>;

impl KeyStorage {
    /// A key of `alg` created at `now`, stored; it becomes current at once for
    /// servers that load the ring afterwards (running ones within
    /// [`WATCH_INTERVAL`]). Keys that left the ring at `now` are deleted, from
    /// the database or the key directory (no private key is kept longer than
    /// needed).
    pub async fn rotate(
        &self,
        alg: Algorithm,
        now: OffsetDateTime,
        retire_after: Duration,
    ) -> Result<SigningKey, KeyFileError> {
        match self {
            Self::Files(dir) => {
                let dir = dir.clone();
                blocking(move || rotate_file(&dir, alg, now, retire_after)).await
            }
            Self::Database { store, seal } => {
                let key = SigningKey::generate(alg).map_err(|_| KeyFileError::Generate)?;
                let existing = store.signing_keys(alg.name()).await?;
                // Strictly after the newest key, so the new one is current.
                let created_at = existing
                    .last()
                    .map_or(now, |k| now.max(k.created_at + Duration::microseconds(1)));
                store
                    .insert_signing_key(&StoredSigningKey {
                        kid: key.kid().to_owned(),
                        algorithm: alg.name().to_owned(),
                        sealed_key: seal.seal(key.pkcs8_der(), &seal_aad(key.kid())),
                        created_at,
                    })
                    .await?;
                let mut created: Vec<OffsetDateTime> =
                    existing.iter().map(|k| k.created_at).collect();
                created.push(created_at);
                let keep = in_ring(&created, now, retire_after);
                for (i, old) in existing.iter().enumerate() {
                    if !keep.contains(&i) {
                        store.delete_signing_key(&old.kid).await?;
                    }
                }
                Ok(key)
            }
        }
    }

    /// The ring at `now`, or `None` when no key of `alg` exists yet. `loaded`
    /// is what the ring in use came from: when nothing changed, no key is read
    /// (`Ok(Some((same, None)))`).
    async fn read(
        &self,
        alg: Algorithm,
        now: OffsetDateTime,
        retire_after: Duration,
        loaded: Option<&RingSource>,
    ) -> Result<Option<(RingSource, Option<KeyRing>)>, KeyFileError> {
        match self {
            Self::Files(dir) => {
                let dir = dir.clone();
                let loaded = loaded.cloned();
                blocking(move || {
                    let files = ring_files(&dir, alg, now, retire_after)?;
                    if files.is_empty() {
                        return Ok(None);
                    }
                    let source: RingSource =
                        files.iter().map(|p| p.display().to_string()).collect();
                    if loaded.as_ref() == Some(&source) {
                        return Ok(Some((source, None)));
                    }
                    Ok(Some((source, Some(load_files(alg, &files)?))))
                })
                .await
            }
            Self::Database { store, seal } => {
                let stored = store.signing_keys(alg.name()).await?;
                let created: Vec<OffsetDateTime> = stored.iter().map(|k| k.created_at).collect();
                let ring: Vec<&StoredSigningKey> = in_ring(&created, now, retire_after)
                    .into_iter()
                    .map(|i| &stored[i])
                    .collect();
                if ring.is_empty() {
                    return Ok(None);
                }
                let source: RingSource = ring.iter().map(|k| k.kid.clone()).collect();
                if loaded == Some(&source) {
                    return Ok(Some((source, None)));
                }
                let mut keys = Vec::with_capacity(ring.len());
                for k in ring {
                    let der = seal
                        .open(&k.sealed_key, &seal_aad(&k.kid))
                        .map_err(|source| KeyFileError::Sealed {
                            kid: k.kid.clone(),
                            source,
                        })?;
                    let key = SigningKey::from_pkcs8_der(alg, &der)
                        .map_err(|_| KeyFileError::InvalidStored(k.kid.clone()))?;
                    // The kid is computed from the key: a row whose kid does not
                    // match its key was not written by us.
                    if key.kid() != k.kid {
                        return Err(KeyFileError::InvalidStored(k.kid.clone()));
                    }
                    keys.push(key);
                }
                Ok(Some((source, Some(ring_of(keys)?))))
            }
        }
    }

    /// Loads the ring for `alg`, generating the first key when there is none.
    /// Keys whose successor is older than `retire_after` are left out.
    pub async fn load_or_create(
        &self,
        alg: Algorithm,
        now: OffsetDateTime,
        retire_after: Duration,
    ) -> Result<KeyRing, KeyFileError> {
        if let Some((_, Some(ring))) = self.read(alg, now, retire_after, None).await? {
            return Ok(ring);
        }
        self.rotate(alg, now, retire_after).await?;
        match self.read(alg, now, retire_after, None).await? {
            Some((_, Some(ring))) => Ok(ring),
            _ => Err(KeyFileError::Generate),
        }
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, KeyFileError> + Send + 'static,
) -> Result<T, KeyFileError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| KeyFileError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(e.to_string()),
        })?
}

/// How often a running server re-reads the key storage.
pub const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Keeps `active` in step with the key storage until `stop` turns true: a key
/// added by `latchkey keys rotate` (in any process, on any node sharing the
/// storage) becomes current within [`WATCH_INTERVAL`], and retired keys leave
/// the JWKS. Keys are read (and self-tested) only when the set of ring keys
/// changes. A storage that cannot be read keeps the ring in use (and logs why).
pub async fn watch(
    storage: KeyStorage,
    alg: Algorithm,
    active: Arc<ActiveKeys>,
    clock: Arc<dyn Clock>,
    retire_after: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut loaded: Option<RingSource> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(WATCH_INTERVAL) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match storage
            .read(alg, clock.now(), retire_after, loaded.as_ref())
            .await
        {
            Ok(Some((source, Some(ring)))) => {
                let before = active.ring();
                if before.current_kid() != ring.current_kid() || before.jwks() != ring.jwks() {
                    tracing::info!(kid = ring.current_kid(), "signing keys reloaded");
                    active.replace(ring);
                }
                loaded = Some(source);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "signing keys not reloaded"),
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn rotating_files_deletes_the_keys_that_left_the_ring() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = datetime!(2026-06-01 00:00:00 UTC);
        let retire = Duration::hours(1);
        for day in 0..3 {
            rotate_file(
                dir.path(),
                Algorithm::EdDSA,
                t0 + Duration::days(day),
                retire,
            )
            .unwrap();
        }
        // At day 2: the day-0 key's successor is a day old (retired, deleted);
        // the day-1 key's successor is brand new (still verifies old tokens).
        let left: Vec<i64> = list(dir.path(), Algorithm::EdDSA)
            .unwrap()
            .into_iter()
            .map(|(stamp, _)| stamp)
            .collect();
        let day = |d: i64| (t0 + Duration::days(d)).unix_timestamp();
        assert_eq!(left, vec![day(1), day(2)]);
        // Another algorithm's files are not touched.
        rotate_file(dir.path(), Algorithm::ES256, t0, retire).unwrap();
        rotate_file(dir.path(), Algorithm::EdDSA, t0 + Duration::days(3), retire).unwrap();
        assert_eq!(list(dir.path(), Algorithm::ES256).unwrap().len(), 1);
        assert_eq!(list(dir.path(), Algorithm::EdDSA).unwrap().len(), 2);
    }
}
