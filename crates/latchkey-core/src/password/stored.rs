//! Checking a password against a stored hash (synchronous; run on the blocking pool).
//!
//! Stored hashes are treated as hostile input: anything that is not a well-formed
//! Argon2 PHC string or bcrypt hash, or whose cost would turn one login into a
//! denial of service, is refused as [`PasswordError::Malformed`] before any work.

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Params, Version};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::hasher::{Argon2Params, PasswordError, Verification};
use super::memory::BlockPool;

/// Largest Argon2 memory cost accepted, in KiB (1 GiB), in a stored hash and in
/// the configuration: a planted hash with a huge cost must not exhaust memory.
pub(super) const MAX_MEMORY_KIB: u32 = 1024 * 1024;
/// Largest Argon2 work (memory KiB × iterations) accepted in a stored hash unless
/// the configured parameters need more: four passes over 1 GiB. Bounds the CPU a
/// planted `t=4294967295` hash could take.
const MAX_STORED_WORK: u64 = 4 * 1024 * 1024;
/// Largest bcrypt cost accepted in a stored hash (2^16 rounds), for the same reason.
const MAX_BCRYPT_COST: u32 = 16;
/// bcrypt hashes have exactly this shape: `$2b$` + two cost digits + `$` + 53
/// characters of bcrypt's base64 (22 salt, 31 hash).
const BCRYPT_LEN: usize = 60;

/// Verifies `password` against `stored` (Argon2 of any variant, or bcrypt
/// `$2a$`/`$2b$`/`$2y$`). `matches` comes from the crates' constant-time
/// comparisons; `needs_rehash` is set only on a match, when the hash is not an
/// Argon2id v19 hash with exactly the `current` parameters.
pub(super) fn verify_stored(
    current: &Argon2Params,
    memory: &BlockPool,
    password: &[u8],
    stored: &str,
) -> Result<Verification, PasswordError> {
    if let Some(cost) = bcrypt_cost(stored) {
        if cost > MAX_BCRYPT_COST {
            return Err(PasswordError::Malformed);
        }
        let matches = bcrypt::verify(password, stored).map_err(|_| PasswordError::Malformed)?;
        return Ok(Verification {
            matches,
            needs_rehash: matches,
        });
    }
    verify_argon2(current, memory, password, stored)
}

/// A stored hash as [`verify_stored`] would accept it, checked without any
/// hashing work: a well-formed Argon2 PHC string within the work bounds, or a
/// strict bcrypt hash of cost at most 16. What `users import` stores.
pub(super) fn check_stored(current: &Argon2Params, stored: &str) -> Result<(), PasswordError> {
    if let Some(cost) = bcrypt_cost(stored) {
        return if cost <= MAX_BCRYPT_COST && (4..=31).contains(&cost) {
            Ok(())
        } else {
            Err(PasswordError::Malformed)
        };
    }
    argon2_parts(current, stored).map(|_| ())
}

/// The parts of an Argon2 PHC string, refused when malformed or when its
/// cost is over the bounds.
fn argon2_parts<'a>(
    current: &Argon2Params,
    stored: &'a str,
) -> Result<(PasswordHash<'a>, Algorithm, Option<Version>, Params), PasswordError> {
    let parsed = PasswordHash::new(stored).map_err(|_| PasswordError::Malformed)?;
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(PasswordError::Malformed);
    }
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|_| PasswordError::Malformed)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|_| PasswordError::Malformed)?;
    let params = Params::try_from(&parsed).map_err(|_| PasswordError::Malformed)?;
    let work = u64::from(params.m_cost()) * u64::from(params.t_cost());
    let configured_work = u64::from(current.memory_kib) * u64::from(current.iterations);
    if params.m_cost() > MAX_MEMORY_KIB || work > MAX_STORED_WORK.max(configured_work) {
        return Err(PasswordError::Malformed);
    }
    Ok((parsed, algorithm, version, params))
}

fn verify_argon2(
    current: &Argon2Params,
    memory: &BlockPool,
    password: &[u8],
    stored: &str,
) -> Result<Verification, PasswordError> {
    let (parsed, algorithm, version, params) = argon2_parts(current, stored)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(PasswordError::Malformed);
    };
    let outdated = algorithm != Algorithm::Argon2id
        || version != Some(Version::V0x13)
        || params.m_cost() != current.memory_kib
        || params.t_cost() != current.iterations
        || params.p_cost() != current.parallelism;
    // Recompute with the stored hash's own algorithm, version, parameters and
    // output length, and compare the outputs in constant time.
    let mut salt_bytes = [0u8; 64];
    let salt = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|_| PasswordError::Malformed)?;
    let argon2 = Argon2::new(algorithm, version.unwrap_or_default(), params);
    let mut computed = Zeroizing::new(vec![0u8; expected.len()]);
    memory
        .hash_into(&argon2, password, salt, &mut computed)
        .map_err(|_| PasswordError::Malformed)?;
    let matches = bool::from(computed.ct_eq(expected.as_bytes()));
    Ok(Verification {
        matches,
        needs_rehash: matches && outdated,
    })
}

/// The cost of `stored` if it is exactly a `$2a$`/`$2b$`/`$2y$` bcrypt hash
/// (two-digit cost, 53 base64 characters). Parsing strictly here matters: the
/// bcrypt crate also reads costs like `0000000031`, which must not slip past the
/// cost limit.
fn bcrypt_cost(stored: &str) -> Option<u32> {
    if stored.len() != BCRYPT_LEN {
        return None;
    }
    let rest = stored
        .strip_prefix("$2a$")
        .or_else(|| stored.strip_prefix("$2b$"))
        .or_else(|| stored.strip_prefix("$2y$"))?;
    let (cost, body) = rest.split_at_checked(2)?;
    let body = body.strip_prefix('$')?;
    let valid = cost.bytes().all(|b| b.is_ascii_digit())
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    if !valid {
        return None;
    }
    cost.parse().ok()
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHasher as _, SaltString};

    use super::*;

    const PW: &str = "correct horse battery staple";

    fn fast() -> Argon2Params {
        Argon2Params {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        }
    }

    fn pool() -> BlockPool {
        BlockPool::new(1, 1024)
    }

    fn argon2_hash(algorithm: Algorithm, version: Version, params: &Argon2Params) -> String {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .unwrap();
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        Argon2::new(algorithm, version, params)
            .hash_password(PW.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    #[test]
    fn bcrypt_is_recognised_strictly() {
        let body = "abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234";
        assert_eq!(bcrypt_cost(&format!("$2b$04${body}")), Some(4));
        assert_eq!(bcrypt_cost(&format!("$2a$12${body}")), Some(12));
        assert_eq!(bcrypt_cost(&format!("$2y$31${body}")), Some(31));
        for not_bcrypt in [
            format!("$2x$04${body}"),
            format!("$2b$+4${body}"),
            format!("$2b$4${body}a"),
            format!("$2b$04${}", &body[1..]),
            format!("$2b$04$!{}", &body[1..]),
            format!("$2b$0000000031${body}"),
            String::new(),
        ] {
            assert_eq!(bcrypt_cost(&not_bcrypt), None, "{not_bcrypt}");
        }
    }

    #[test]
    fn planted_costs_are_refused_before_any_work() {
        let body = "abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234";
        for stored in [
            format!("$2b$17${body}"),
            format!("$2b$31${body}"),
            // The bcrypt crate would read cost 31 from this one.
            format!("$2b$0000000031${body}"),
            "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".to_owned(),
            "$argon2id$v=19$m=1048577,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".to_owned(),
            "$argon2id$v=19$m=1024,t=4294967295,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".to_owned(),
        ] {
            assert!(
                matches!(
                    verify_stored(&fast(), &pool(), PW.as_bytes(), &stored),
                    Err(PasswordError::Malformed)
                ),
                "{stored}"
            );
        }
    }

    #[test]
    fn incomplete_or_invalid_argon2_strings_are_malformed() {
        for stored in [
            "$argon2id$v=19$m=1024,t=1,p=1",
            "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ",
            "$argon2id$v=18$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            "$argon2id$v=19$m=1024,t=1,p=1$c2Fs$aGFzaGhhc2hoYXNo",
            "$scrypt$ln=16,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            "$argon2id$v=19$m=1024,t=1,p=1$$$",
        ] {
            assert!(
                matches!(
                    verify_stored(&fast(), &pool(), PW.as_bytes(), stored),
                    Err(PasswordError::Malformed)
                ),
                "{stored}"
            );
        }
    }

    #[test]
    fn other_argon2_variants_and_versions_verify_and_ask_for_a_rehash() {
        for (algorithm, version) in [
            (Algorithm::Argon2i, Version::V0x13),
            (Algorithm::Argon2d, Version::V0x13),
            (Algorithm::Argon2id, Version::V0x10),
        ] {
            let stored = argon2_hash(algorithm, version, &fast());
            assert_eq!(
                verify_stored(&fast(), &pool(), PW.as_bytes(), &stored).unwrap(),
                Verification {
                    matches: true,
                    needs_rehash: true
                },
                "{algorithm:?} {version:?}"
            );
            assert_eq!(
                verify_stored(&fast(), &pool(), b"wrong", &stored).unwrap(),
                Verification {
                    matches: false,
                    needs_rehash: false
                }
            );
        }
        let current = argon2_hash(Algorithm::Argon2id, Version::V0x13, &fast());
        assert!(
            !verify_stored(&fast(), &pool(), PW.as_bytes(), &current)
                .unwrap()
                .needs_rehash
        );
    }
}
