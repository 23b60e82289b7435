//! Where the access-token signing keys live, and keeping a running server's
//! ring in step with them.
//!
//! Two storages, one rule. A key is published (in the JWKS, and accepted) from
//! its creation, but signs only from its activation time: a rotation activates
//! the new key `keys.publish_ahead_seconds` later, so resource servers that
//! cache the JWKS know it before the first token it signs (`--now` activates at
//! once, for emergencies). Of the keys active at a time, the newest created is
//! current. An older key stays in the ring (verifying and published) until every
//! token it can have signed has expired: until a key created after it has been
//! active for longer than the access-token lifetime plus the leeway.
//!
//! - Files (dev): `<data_dir>/keys/<created>_<activates>.<alg>.der` (Unix
//!   seconds; `<created>.<alg>.der` from earlier releases was active at once),
//!   PKCS#8 DER, mode 0600 in a 0700 directory.
//! - Database (production): the `signing_keys` table, each private key sealed
//!   with a key derived from `secrets.master_key` and its kid as associated data;
//!   every node sharing the database shares the keys.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use latchkey_core::auth::{KeyInfo, KeyState};
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

/// A key file: creation and activation (Unix seconds), and its path.
type KeyFile = (i64, i64, PathBuf);

/// Key files of `alg`, oldest created first.
fn list(dir: &Path, alg: Algorithm) -> Result<Vec<KeyFile>, KeyFileError> {
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
        let Some(stamps) = name.strip_suffix(&suffix) else {
            continue;
        };
        let parsed = match stamps.split_once('_') {
            Some((created, activates)) => created.parse().ok().zip(activates.parse().ok()),
            None => stamps.parse().ok().map(|created: i64| (created, created)),
        };
        if let Some((created, activates)) = parsed {
            found.push((created, activates, path));
        }
    }
    found.sort();
    Ok(found)
}

fn unix(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Writes a new key file of `alg` created at `now`, signing from
/// `activates_at`, then deletes the files of keys that left the ring (no
/// private key is kept longer than needed).
fn rotate_file(
    dir: &Path,
    alg: Algorithm,
    now: OffsetDateTime,
    activates_at: OffsetDateTime,
    retire_after: Duration,
) -> Result<SigningKey, KeyFileError> {
    create_private_dir(dir).map_err(io(dir))?;
    let key = SigningKey::generate(alg).map_err(|_| KeyFileError::Generate)?;
    let mut created = now.unix_timestamp();
    // Two rotations within a second still get distinct, ordered names.
    if let Some((last, _, _)) = list(dir, alg)?.last() {
        created = created.max(last + 1);
    }
    // A creation moved later (for the ordering) moves the activation with it.
    let activates = (activates_at.unix_timestamp() + (created - now.unix_timestamp())).max(created);
    let path = dir.join(format!("{created}_{activates}.{}.der", alg_tag(alg)));
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
    let retired = ring_files(dir, alg, now, retire_after).and_then(|ring| {
        let keep = ring.map(|(files, _)| files).unwrap_or_default();
        Ok(list(dir, alg)?
            .into_iter()
            .map(|(_, _, path)| path)
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

/// The keys that belong in the ring at `now`, from `(created, activates)`
/// oldest created first: their indexes, and the position among them of the
/// current (signing) key — the newest created of those active at `now` (the
/// oldest key when none is active yet). A key leaves the ring once a key
/// created after it has been active for more than `retire_after`. `None` for
/// no keys.
fn ring_plan(
    keys: &[(OffsetDateTime, OffsetDateTime)],
    now: OffsetDateTime,
    retire_after: Duration,
) -> Option<(Vec<usize>, usize)> {
    if keys.is_empty() {
        return None;
    }
    let current = keys
        .iter()
        .rposition(|(_, activates)| *activates <= now)
        .unwrap_or(0);
    let kept: Vec<usize> = (0..keys.len())
        .filter(|&i| {
            let superseded = keys[i + 1..]
                .iter()
                .map(|(_, activates)| *activates)
                .filter(|activates| *activates <= now)
                .min();
            superseded.is_none_or(|at| now - at <= retire_after)
        })
        .collect();
    let position = kept.iter().position(|&i| i == current)?;
    Some((kept, position))
}

/// Each key of the ring at `now` (from `(created, activates)` oldest created
/// first, as [`ring_plan`]): its index, its state, and for a superseded key
/// when it leaves the ring (by the same rule).
fn key_states(
    keys: &[(OffsetDateTime, OffsetDateTime)],
    now: OffsetDateTime,
    retire_after: Duration,
) -> Vec<(usize, KeyState, Option<OffsetDateTime>)> {
    let Some((kept, current)) = ring_plan(keys, now, retire_after) else {
        return Vec::new();
    };
    let signing = kept[current];
    kept.into_iter()
        .map(|i| {
            let superseded = keys[i + 1..]
                .iter()
                .map(|(_, activates)| *activates)
                .filter(|activates| *activates <= now)
                .min();
            if i == signing {
                (i, KeyState::Active, None)
            } else if keys[i].1 > now {
                (i, KeyState::Published, None)
            } else {
                (i, KeyState::Retired, superseded.map(|at| at + retire_after))
            }
        })
        .collect()
}

/// The key files that belong in the ring at `now`, oldest first, and the
/// position of the current one. Lists the directory only; reads no key.
fn ring_files(
    dir: &Path,
    alg: Algorithm,
    now: OffsetDateTime,
    retire_after: Duration,
) -> Result<Option<(Vec<PathBuf>, usize)>, KeyFileError> {
    let files = list(dir, alg)?;
    let times: Vec<(OffsetDateTime, OffsetDateTime)> = files
        .iter()
        .map(|(created, activates, _)| (unix(*created), unix(*activates)))
        .collect();
    Ok(ring_plan(&times, now, retire_after).map(|(kept, current)| {
        let paths = kept.into_iter().map(|i| files[i].2.clone()).collect();
        (paths, current)
    }))
}

/// Reads and checks the keys in `files` (oldest first); `current` signs.
fn load_files(alg: Algorithm, files: &[PathBuf], current: usize) -> Result<KeyRing, KeyFileError> {
    let mut keys = Vec::new();
    for path in files {
        let der = zeroize::Zeroizing::new(fs::read(path).map_err(io(path))?);
        keys.push(
            SigningKey::from_pkcs8_der(alg, &der)
                .map_err(|_| KeyFileError::Invalid(path.clone()))?,
        );
    }
    ring_of(keys, current)
}

/// A ring from keys oldest first, signing with the one at `current`; the
/// others verify and are published.
fn ring_of(mut keys: Vec<SigningKey>, current: usize) -> Result<KeyRing, KeyFileError> {
    if current >= keys.len() {
        return Err(KeyFileError::Generate);
    }
    let signing = keys.remove(current);
    keys.reverse();
    KeyRing::new(signing, keys).map_err(|_| KeyFileError::Generate)
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

/// What a ring was loaded from: file paths or kids, and which one signs (a
/// reload happens only when this changes).
type RingSource = (Vec<String>, usize);

impl KeyStorage {
    /// A key of `alg` created at `now`, stored, signing from `activates_at`
    /// (published at once: running servers, within [`WATCH_INTERVAL`], accept
    /// and publish it, and sign with it from then). Keys that left the ring at
    /// `now` are deleted, from the database or the key directory (no private
    /// key is kept longer than needed).
    pub async fn rotate(
        &self,
        alg: Algorithm,
        now: OffsetDateTime,
        activates_at: OffsetDateTime,
        retire_after: Duration,
    ) -> Result<SigningKey, KeyFileError> {
        match self {
            Self::Files(dir) => {
                let dir = dir.clone();
                blocking(move || rotate_file(&dir, alg, now, activates_at, retire_after)).await
            }
            Self::Database { store, seal } => {
                let key = SigningKey::generate(alg).map_err(|_| KeyFileError::Generate)?;
                let existing = store.signing_keys(alg.name()).await?;
                // Strictly after the newest key, so the new one is the newest.
                let created_at = existing
                    .last()
                    .map_or(now, |k| now.max(k.created_at + Duration::microseconds(1)));
                let activates_at = activates_at.max(created_at);
                store
                    .insert_signing_key(&StoredSigningKey {
                        kid: key.kid().to_owned(),
                        algorithm: alg.name().to_owned(),
                        sealed_key: seal.seal(key.pkcs8_der(), &seal_aad(key.kid())),
                        created_at,
                        activates_at,
                    })
                    .await?;
                let mut times: Vec<(OffsetDateTime, OffsetDateTime)> = existing
                    .iter()
                    .map(|k| (k.created_at, k.activates_at))
                    .collect();
                times.push((created_at, activates_at));
                let keep = ring_plan(&times, now, retire_after)
                    .map(|(kept, _)| kept)
                    .unwrap_or_default();
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
                    let Some((files, current)) = ring_files(&dir, alg, now, retire_after)? else {
                        return Ok(None);
                    };
                    let source: RingSource = (
                        files.iter().map(|p| p.display().to_string()).collect(),
                        current,
                    );
                    if loaded.as_ref() == Some(&source) {
                        return Ok(Some((source, None)));
                    }
                    Ok(Some((source, Some(load_files(alg, &files, current)?))))
                })
                .await
            }
            Self::Database { store, seal } => {
                let stored = store.signing_keys(alg.name()).await?;
                let times: Vec<(OffsetDateTime, OffsetDateTime)> = stored
                    .iter()
                    .map(|k| (k.created_at, k.activates_at))
                    .collect();
                let Some((kept, current)) = ring_plan(&times, now, retire_after) else {
                    return Ok(None);
                };
                let ring: Vec<&StoredSigningKey> = kept.into_iter().map(|i| &stored[i]).collect();
                let source: RingSource = (ring.iter().map(|k| k.kid.clone()).collect(), current);
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
                Ok(Some((source, Some(ring_of(keys, current)?))))
            }
        }
    }

    /// The keys of `alg` in the ring at `now`, oldest first, with their
    /// states (reads key files to learn their kids; opens no sealed key).
    pub async fn list(
        &self,
        alg: Algorithm,
        now: OffsetDateTime,
        retire_after: Duration,
    ) -> Result<Vec<KeyInfo>, KeyFileError> {
        // (kid source, created, activates), oldest first.
        let keys: Vec<(Result<String, PathBuf>, OffsetDateTime, OffsetDateTime)> = match self {
            Self::Files(dir) => {
                let dir = dir.clone();
                blocking(move || list(&dir, alg))
                    .await?
                    .into_iter()
                    .map(|(created, activates, path)| (Err(path), unix(created), unix(activates)))
                    .collect()
            }
            Self::Database { store, .. } => store
                .signing_keys(alg.name())
                .await?
                .into_iter()
                .map(|k| (Ok(k.kid), k.created_at, k.activates_at))
                .collect(),
        };
        let times: Vec<(OffsetDateTime, OffsetDateTime)> =
            keys.iter().map(|(_, c, a)| (*c, *a)).collect();
        let mut listed = Vec::new();
        for (i, state, expires_at) in key_states(&times, now, retire_after) {
            let (kid, created_at, activates_at) = keys[i].clone();
            let kid = match kid {
                Ok(kid) => kid,
                Err(path) => {
                    blocking(move || {
                        let der = zeroize::Zeroizing::new(fs::read(&path).map_err(io(&path))?);
                        SigningKey::from_pkcs8_der(alg, &der)
                            .map(|key| key.kid().to_owned())
                            .map_err(|_| KeyFileError::Invalid(path.clone()))
                    })
                    .await?
                }
            };
            listed.push(KeyInfo {
                kid,
                alg: alg.name().to_owned(),
                state,
                created_at,
                activates_at,
                expires_at,
            });
        }
        Ok(listed)
    }

    /// Loads the ring for `alg`, generating the first key (active at once:
    /// no one can have cached a JWKS without it) when there is none. Keys
    /// superseded more than `retire_after` ago are left out.
    pub async fn load_or_create(
        &self,
        alg: Algorithm,
        now: OffsetDateTime,
        retire_after: Duration,
    ) -> Result<KeyRing, KeyFileError> {
        if let Some((_, Some(ring))) = self.read(alg, now, retire_after, None).await? {
            return Ok(ring);
        }
        self.rotate(alg, now, now, retire_after).await?;
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
/// Each read of the storage is reported to `passes` as a pass: it
/// starts before the clock is read and finishes once the ring in use has been
/// replaced (or kept). A pass asked for with [`crate::passes::Passes::run`]
/// starts at once instead of after [`WATCH_INTERVAL`]; the interval is not
/// changed otherwise.
pub async fn watch(
    storage: KeyStorage,
    alg: Algorithm,
    active: Arc<ActiveKeys>,
    clock: Arc<dyn Clock>,
    retire_after: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    passes: crate::passes::Passes,
) {
    let mut loaded: Option<RingSource> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(WATCH_INTERVAL) => {}
            () = passes.requested() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let pass = passes.start();
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
        passes.finish(pass);
    }
}

#[cfg(test)]
mod tests;
