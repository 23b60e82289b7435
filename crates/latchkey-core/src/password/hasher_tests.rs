//! Tests of the hasher service (a child module of `hasher`, so it can see the
//! semaphore and the dummy hash).

use std::time::Duration;

use super::*;

const PW: &str = "correct horse battery staple";

fn fast() -> Argon2Params {
    Argon2Params {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    }
}

#[tokio::test]
async fn hash_then_verify() {
    let h = PasswordHasher::new(fast(), 2).unwrap();
    let hash = h.hash(PW).await.unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{hash}");
    assert_eq!(
        h.verify(PW, &hash).await.unwrap(),
        Verification {
            matches: true,
            needs_rehash: false
        }
    );
    assert_eq!(
        h.verify("correct horse battery stapl", &hash)
            .await
            .unwrap(),
        Verification {
            matches: false,
            needs_rehash: false
        }
    );
    assert_ne!(hash, h.hash(PW).await.unwrap(), "salted");
    for pw in [
        "",
        "é😀 mixed unicode password",
        &"x".repeat(128),
        &"ü".repeat(128),
    ] {
        let hash = h.hash(pw).await.unwrap();
        assert!(h.verify(pw, &hash).await.unwrap().matches);
        assert!(!h.verify("something else", &hash).await.unwrap().matches);
    }
}

#[tokio::test]
async fn default_params_are_owasp() {
    assert_eq!(
        Argon2Params::default(),
        Argon2Params {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1
        }
    );
    let h = PasswordHasher::new(Argon2Params::default(), 1).unwrap();
    let hash = h.hash("a long enough password").await.unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(
        h.verify("a long enough password", &hash)
            .await
            .unwrap()
            .matches
    );
}

#[tokio::test]
async fn changed_params_ask_for_a_rehash() {
    let old = PasswordHasher::new(fast(), 1).unwrap();
    let hash = old.hash("password password").await.unwrap();
    for changed in [
        Argon2Params {
            memory_kib: 2048,
            ..fast()
        },
        Argon2Params {
            iterations: 2,
            ..fast()
        },
        Argon2Params {
            parallelism: 2,
            ..fast()
        },
    ] {
        let new = PasswordHasher::new(changed, 1).unwrap();
        assert_eq!(
            new.verify("password password", &hash).await.unwrap(),
            Verification {
                matches: true,
                needs_rehash: true
            },
            "{changed:?}"
        );
        assert!(!new.verify("wrong", &hash).await.unwrap().needs_rehash);
    }
}

#[tokio::test]
async fn bcrypt_imports_verify_and_ask_for_a_rehash() {
    let h = PasswordHasher::new(fast(), 1).unwrap();
    let b = bcrypt::hash_with_result(PW, 4).unwrap().to_string();
    assert!(b.starts_with("$2b$04$"), "{b}");
    for variant in [
        b.clone(),
        b.replacen("$2b$", "$2y$", 1),
        b.replacen("$2b$", "$2a$", 1),
    ] {
        assert_eq!(
            h.verify(PW, &variant).await.unwrap(),
            Verification {
                matches: true,
                needs_rehash: true
            },
            "{variant}"
        );
        assert_eq!(
            h.verify("wrong", &variant).await.unwrap(),
            Verification {
                matches: false,
                needs_rehash: false
            }
        );
    }
    // Re-hashing yields a current Argon2id hash that no longer needs one.
    let upgraded = h.hash(PW).await.unwrap();
    assert!(!h.verify(PW, &upgraded).await.unwrap().needs_rehash);
}

#[tokio::test]
async fn hostile_stored_hashes_are_malformed_not_panics() {
    let h = PasswordHasher::new(fast(), 1).unwrap();
    let huge = "x".repeat(10_000);
    let huge_dollars = "$".repeat(10_000);
    let huge_argon = format!("$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ${huge}");
    for stored in [
        "",
        "plaintext",
        "$",
        "$argon2id$garbage",
        "$argon2id$",
        "$2b$",
        "$2b$04$",
        "$2b$99$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
        "$2b$31$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
        "$2b$0000000031$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234",
        "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
        "$argon2id$v=19$m=1024,t=4294967295,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
        huge.as_str(),
        huge_dollars.as_str(),
        huge_argon.as_str(),
    ] {
        assert!(
            matches!(h.verify("pw", stored).await, Err(PasswordError::Malformed)),
            "{stored:.40}"
        );
    }
}

#[tokio::test]
async fn verify_dummy_does_the_work_once_set_up() {
    let h = PasswordHasher::new(fast(), 1).unwrap();
    h.verify_dummy("anything").await;
    let dummy = h.inner.dummy.get().unwrap().clone();
    assert!(dummy.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
    h.verify_dummy("anything again").await;
    assert_eq!(h.inner.dummy.get(), Some(&dummy), "computed once");
    // The work verify_dummy does is a real, failing verification.
    assert_eq!(
        h.verify("anything", &dummy).await.unwrap(),
        Verification {
            matches: false,
            needs_rehash: false
        }
    );
}

#[tokio::test]
async fn the_semaphore_queues_instead_of_failing() {
    let h = PasswordHasher::new(fast(), 1).unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move {
                let pw = format!("password number {i}");
                let hash = h.hash(&pw).await?;
                h.verify(&pw, &hash).await
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().unwrap().matches);
    }
    assert_eq!(h.inner.permits.available_permits(), 1);
}

#[tokio::test]
async fn a_cancelled_caller_keeps_the_permit_until_the_work_ends() {
    // Heavy enough (tens of milliseconds at least) to still be running when
    // the caller is aborted.
    let slow = Argon2Params {
        memory_kib: 32 * 1024,
        iterations: 8,
        parallelism: 1,
    };
    let h = PasswordHasher::new(slow, 1).unwrap();
    let task = {
        let h = h.clone();
        tokio::spawn(async move { h.hash("a password to abandon").await })
    };
    while h.inner.permits.available_permits() != 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(
        h.inner.permits.available_permits(),
        0,
        "the blocking work still holds its permit"
    );
    tokio::time::timeout(Duration::from_secs(30), async {
        while h.inner.permits.available_permits() != 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
}

#[test]
fn zero_means_one_permit_per_core_and_bad_params_are_refused() {
    let cores = std::thread::available_parallelism().unwrap().get();
    let h = PasswordHasher::new(fast(), 0).unwrap();
    assert_eq!(h.inner.permits.available_permits(), cores);
    assert_eq!(h.params(), &fast());
    assert!(PasswordHasher::new(fast(), usize::MAX).is_ok(), "clamped");
    for bad in [
        Argon2Params {
            memory_kib: 1,
            ..fast()
        },
        Argon2Params {
            iterations: 0,
            ..fast()
        },
        Argon2Params {
            parallelism: 0,
            ..fast()
        },
        Argon2Params {
            memory_kib: 1024 * 1024 + 1,
            ..fast()
        },
    ] {
        assert!(
            matches!(
                PasswordHasher::new(bad, 1),
                Err(PasswordError::InvalidParams)
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn debug_shows_no_secrets() {
    let h = PasswordHasher::new(fast(), 1).unwrap();
    let shown = format!("{h:?}");
    assert!(
        shown.starts_with("PasswordHasher { params: Argon2Params"),
        "{shown}"
    );
    assert!(!shown.contains("dummy"), "{shown}");
}

#[tokio::test]
async fn pooled_hashes_match_the_argon2_crate_both_ways() {
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
    let h = PasswordHasher::new(fast(), 2).unwrap();
    // Ours, checked by the crate's own verifier.
    let ours = h.hash(PW).await.unwrap();
    let parsed = PasswordHash::new(&ours).unwrap();
    assert!(Argon2::default()
        .verify_password(PW.as_bytes(), &parsed)
        .is_ok());
    assert!(Argon2::default()
        .verify_password(b"not the password", &parsed)
        .is_err());
    // The crate's, checked by ours, repeatedly (each run reuses the dirty buffer
    // of the one before).
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let theirs = h
        .inner
        .argon2
        .hash_password(PW.as_bytes(), &salt)
        .unwrap()
        .to_string();
    for _ in 0..3 {
        assert!(h.verify(PW, &theirs).await.unwrap().matches);
        assert!(
            !h.verify("nope, not it at all", &theirs)
                .await
                .unwrap()
                .matches
        );
    }
    assert!(h.inner.memory.spare() >= 1, "buffers are kept for reuse");
}
