//! Conformance cases for second factors: TOTP records, recovery codes and
//! sign-in challenges, including races on single-use codes.

// A test suite living in a library: failing loudly is its job.
#![allow(
    clippy::missing_panics_doc,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::sync::Arc;

use latchkey_core::account::{normalize_email, NewUser};
use latchkey_core::audit::{EventKind, SecurityEvent};
use latchkey_core::mfa::challenge::MfaChallenge;
use latchkey_core::mfa::passkey::{Ceremony, CeremonyKind, PasskeyRecord};
use latchkey_core::mfa::{MfaSummary, TotpRecord};
use latchkey_core::ports::{Aftermath, Expired, Store, StoreError};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const T0: OffsetDateTime = datetime!(2026-07-01 09:00:00 UTC);

async fn user(store: &dyn Store, email: &str) -> Uuid {
    store
        .create_user(&NewUser {
            id: Uuid::now_v7(),
            email: email.to_owned(),
            email_normalized: normalize_email(email),
            name: None,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            created_at: T0,
        })
        .await
        .unwrap()
        .id
}

fn pending(user_id: Uuid, secret: &[u8]) -> TotpRecord {
    TotpRecord {
        id: Uuid::now_v7(),
        user_id,
        secret_sealed: secret.to_vec(),
        key_id: "key-a".into(),
        created_at: T0,
        confirmed_at: None,
        last_step: None,
    }
}

fn codes(n: u8) -> Vec<[u8; 32]> {
    (0..n).map(|i| [i; 32]).collect()
}

/// Pending enrolments replace each other; confirmation stores the step and the
/// codes at once; a confirmed factor is not replaced; the user record and the
/// summary report it; deletion takes the codes along on request.
pub async fn totp_lifecycle(store: &dyn Store) {
    let id = user(store, "totp@example.com").await;
    assert_eq!(store.totp(id).await.unwrap(), None);
    let first = pending(id, b"one");
    assert!(store.put_pending_totp(&first).await.unwrap());
    let second = pending(id, b"two");
    assert!(store.put_pending_totp(&second).await.unwrap());
    assert_eq!(store.totp(id).await.unwrap(), Some(second.clone()));
    assert!(!store
        .confirm_totp(id, first.id, 7, &codes(10), T0, &Aftermath::default())
        .await
        .unwrap());
    assert!(store
        .confirm_totp(id, second.id, 7, &codes(10), T0, &Aftermath::default())
        .await
        .unwrap());
    let confirmed = store.totp(id).await.unwrap().unwrap();
    assert_eq!(confirmed.confirmed_at, Some(T0));
    assert_eq!(confirmed.last_step, Some(7));
    assert!(!store
        .put_pending_totp(&pending(id, b"three"))
        .await
        .unwrap());
    let summary = MfaSummary {
        totp: true,
        webauthn: 0,
        recovery_codes_left: 10,
    };
    assert_eq!(store.mfa_summary(id).await.unwrap(), summary);
    assert_eq!(store.user_by_id(id).await.unwrap().unwrap().mfa, summary);
    assert_eq!(
        store
            .user_by_email("totp@example.com")
            .await
            .unwrap()
            .unwrap()
            .mfa,
        summary
    );
    // Steps only move forward.
    assert!(!store.use_totp_step(second.id, 7).await.unwrap());
    assert!(store.use_totp_step(second.id, 8).await.unwrap());
    assert!(!store.use_totp_step(second.id, 6).await.unwrap());
    assert_eq!(store.totp_key_ids().await.unwrap(), ["key-a"]);
    // Re-sealing is conditional on the old ciphertext.
    assert!(!store
        .reseal_totp(second.id, b"stale", b"new", "key-b")
        .await
        .unwrap());
    assert_eq!(
        store.totp_not_sealed_with("key-b", 10).await.unwrap().len(),
        1
    );
    assert!(store
        .reseal_totp(second.id, b"two", b"new", "key-b")
        .await
        .unwrap());
    assert!(store
        .totp_not_sealed_with("key-b", 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.totp(id).await.unwrap().unwrap().secret_sealed, b"new");

    // While a passkey is left the recovery codes stay; the last factor to go
    // takes them.
    let key = passkey(id, 42);
    store
        .insert_passkey(&key, &Aftermath::default(), 20)
        .await
        .unwrap();
    let removed = event(id, EventKind::MfaDisabled);
    let after = Aftermath {
        event: Some(&removed),
        ..Aftermath::default()
    };
    assert!(store.delete_totp(id, T0, &after).await.unwrap());
    assert_eq!(store.mfa_summary(id).await.unwrap().recovery_codes_left, 10);
    assert_eq!(
        store.user_events(id, 10).await.unwrap(),
        vec![removed.clone()]
    );
    assert!(!store.delete_totp(id, T0, &after).await.unwrap());
    assert!(store
        .delete_passkey(id, key.id, T0, &Aftermath::default())
        .await
        .unwrap());
    assert_eq!(store.mfa_summary(id).await.unwrap(), MfaSummary::default());
    let fresh = store.user_by_id(id).await.unwrap().unwrap();
    assert_eq!(fresh.mfa, MfaSummary::default());
    // Removing a pending enrolment writes no aftermath: it protected nothing.
    store.put_pending_totp(&pending(id, b"four")).await.unwrap();
    let pending_removed = event(id, EventKind::MfaDisabled);
    let after = Aftermath {
        event: Some(&pending_removed),
        ..Aftermath::default()
    };
    assert!(store.delete_totp(id, T0, &after).await.unwrap());
    assert_eq!(store.user_events(id, 10).await.unwrap().len(), 1);
}

fn event(user_id: Uuid, kind: EventKind) -> SecurityEvent {
    SecurityEvent {
        id: Uuid::now_v7(),
        user_id: Some(user_id),
        kind,
        created_at: T0,
        session_id: None,
        ip: None,
        user_agent: None,
        actor_id: None,
        details: None,
    }
}

/// A recovery code is used once, by its owner only; replacing voids the old set.
pub async fn recovery_codes_are_single_use(store: &dyn Store) {
    let ada = user(store, "rc-ada@example.com").await;
    let eve = user(store, "rc-eve@example.com").await;
    store
        .replace_recovery_codes(ada, &codes(3), T0)
        .await
        .unwrap();
    assert!(!store
        .use_recovery_code(eve, &[1; 32], T0, &Aftermath::default())
        .await
        .unwrap());
    assert!(store
        .use_recovery_code(ada, &[1; 32], T0, &Aftermath::default())
        .await
        .unwrap());
    assert!(!store
        .use_recovery_code(ada, &[1; 32], T0, &Aftermath::default())
        .await
        .unwrap());
    assert_eq!(store.mfa_summary(ada).await.unwrap().recovery_codes_left, 2);
    store
        .replace_recovery_codes(ada, &[[9; 32]], T0)
        .await
        .unwrap();
    assert!(!store
        .use_recovery_code(ada, &[2; 32], T0, &Aftermath::default())
        .await
        .unwrap());
    assert!(store
        .use_recovery_code(ada, &[9; 32], T0, &Aftermath::default())
        .await
        .unwrap());
}

fn challenge(user_id: Uuid, hash: u8) -> MfaChallenge {
    MfaChallenge {
        id: Uuid::now_v7(),
        user_id,
        token_hash: [hash; 32],
        created_at: T0,
        expires_at: T0 + Duration::minutes(5),
        attempts: 0,
        remember_me: true,
        mode: latchkey_core::auth::Delivery::Cookie,
        lockout_key: [7; 32],
        // Not the default 0: the round trip shows it is stored.
        security_stamp: 3,
    }
}

/// Challenges round-trip, count wrong answers, are consumed once and only
/// before expiry and below the attempt limit, and are cleaned up.
pub async fn mfa_challenges_are_single_use(store: &dyn Store) {
    let id = user(store, "challenge@example.com").await;
    let c = challenge(id, 1);
    store.create_mfa_challenge(&c).await.unwrap();
    assert_eq!(
        store.mfa_challenge(&[1; 32]).await.unwrap(),
        Some(c.clone())
    );
    assert_eq!(store.mfa_challenge(&[2; 32]).await.unwrap(), None);
    assert!(store.take_mfa_attempt(c.id, T0, 5).await.unwrap());
    assert!(store.take_mfa_attempt(c.id, T0, 5).await.unwrap());
    assert!(!store.consume_mfa_challenge(c.id, T0, 2).await.unwrap());
    assert!(!store
        .consume_mfa_challenge(c.id, T0 + Duration::minutes(5), 5)
        .await
        .unwrap());
    assert!(store.consume_mfa_challenge(c.id, T0, 5).await.unwrap());
    assert!(!store.consume_mfa_challenge(c.id, T0, 5).await.unwrap());
    assert_eq!(store.mfa_challenge(&[1; 32]).await.unwrap(), None);

    let live = challenge(id, 3);
    store.create_mfa_challenge(&live).await.unwrap();
    let expired = MfaChallenge {
        expires_at: T0,
        ..challenge(id, 4)
    };
    store.create_mfa_challenge(&expired).await.unwrap();
    let removed = store
        .delete_expired(Expired::MfaChallenges, T0 + Duration::seconds(1), 100)
        .await
        .unwrap();
    assert_eq!(removed, 2, "the used and the expired challenge");
    assert!(store.mfa_challenge(&[3; 32]).await.unwrap().is_some());
}

/// Twenty concurrent uses of one TOTP step, one recovery code and one
/// challenge: exactly one of each succeeds.
pub async fn concurrent_code_uses_admit_exactly_one(store: Arc<dyn Store>) {
    let id = user(&*store, "race@example.com").await;
    let record = pending(id, b"seed");
    store.put_pending_totp(&record).await.unwrap();
    store
        .confirm_totp(id, record.id, 1, &codes(1), T0, &Aftermath::default())
        .await
        .unwrap();
    let c = challenge(id, 5);
    store.create_mfa_challenge(&c).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            (
                store.use_totp_step(record.id, 2).await.unwrap(),
                store
                    .use_recovery_code(id, &[0; 32], T0, &Aftermath::default())
                    .await
                    .unwrap(),
                store.consume_mfa_challenge(c.id, T0, 5).await.unwrap(),
            )
        }));
    }
    let mut wins = (0, 0, 0);
    for task in tasks {
        let (a, b, c) = task.await.unwrap();
        wins.0 += usize::from(a);
        wins.1 += usize::from(b);
        wins.2 += usize::from(c);
    }
    assert_eq!(wins, (1, 1, 1));
}

/// Attempts on a challenge are taken in one conditional write: twenty
/// concurrent callers get at most the limit between them, none once it is
/// spent, and none on a used or expired challenge. (Run from
/// `concurrent_code_uses_admit_exactly_one`, which the macro registers.)
pub async fn concurrent_attempts_admit_at_most_the_limit(store: Arc<dyn Store>) {
    let id = user(&*store, "attempts@example.com").await;
    let c = challenge(id, 6);
    store.create_mfa_challenge(&c).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store.take_mfa_attempt(c.id, T0, 5).await.unwrap()
        }));
    }
    let mut granted = 0;
    for task in tasks {
        granted += usize::from(task.await.unwrap());
    }
    assert_eq!(granted, 5, "exactly the limit, never more");
    assert!(!store.take_mfa_attempt(c.id, T0, 5).await.unwrap());
    let stored = store.mfa_challenge(&[6; 32]).await.unwrap().unwrap();
    assert_eq!(stored.attempts, 5);
    // A right answer on the last attempt still consumes (limit + 1: its own
    // attempt is counted).
    assert!(store.consume_mfa_challenge(c.id, T0, 6).await.unwrap());

    let used = challenge(id, 7);
    store.create_mfa_challenge(&used).await.unwrap();
    assert!(store.take_mfa_attempt(used.id, T0, 5).await.unwrap());
    assert!(store.consume_mfa_challenge(used.id, T0, 6).await.unwrap());
    assert!(!store.take_mfa_attempt(used.id, T0, 5).await.unwrap());
    let expired = challenge(id, 8);
    store.create_mfa_challenge(&expired).await.unwrap();
    assert!(!store
        .take_mfa_attempt(expired.id, expired.expires_at, 5)
        .await
        .unwrap());
    assert!(!store.take_mfa_attempt(Uuid::now_v7(), T0, 5).await.unwrap());
}

fn passkey(user_id: Uuid, credential: u8) -> PasskeyRecord {
    PasskeyRecord {
        id: Uuid::now_v7(),
        user_id,
        credential_id: vec![credential; 16],
        name: "Key".into(),
        passkey_json: "{}".into(),
        counter: 0,
        backup_eligible: false,
        backup_state: false,
        created_at: T0,
        last_used_at: None,
    }
}

/// Passkeys round-trip, are unique by credential id across users, count in the
/// user's summary, record their use, and are renamed or removed only by their
/// owner.
pub async fn passkeys_round_trip(store: &dyn Store) {
    let ada = user(store, "pk-ada@example.com").await;
    let eve = user(store, "pk-eve@example.com").await;
    let key = passkey(ada, 1);
    store
        .insert_passkey(&key, &Aftermath::default(), 20)
        .await
        .unwrap();
    assert_eq!(store.passkeys(ada).await.unwrap(), vec![key.clone()]);
    let err = store
        .insert_passkey(&passkey(eve, 1), &Aftermath::default(), 20)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(store.mfa_summary(ada).await.unwrap().webauthn, 1);
    assert_eq!(
        store.user_by_id(ada).await.unwrap().unwrap().mfa.webauthn,
        1
    );
    let json = r#"{"cred":{"counter":7,"backup_eligible":true,"backup_state":true}}"#;
    store
        .record_passkey_use(key.id, json, T0 + Duration::minutes(1))
        .await
        .unwrap();
    let used = &store.passkeys(ada).await.unwrap()[0];
    assert_eq!(
        (used.counter, used.backup_eligible, used.backup_state),
        (7, true, true)
    );
    assert_eq!(used.last_used_at, Some(T0 + Duration::minutes(1)));
    assert_eq!(used.passkey_json, json);
    assert!(!store.rename_passkey(eve, key.id, "mine").await.unwrap());
    assert!(store.rename_passkey(ada, key.id, "Laptop").await.unwrap());
    assert_eq!(store.passkeys(ada).await.unwrap()[0].name, "Laptop");
    assert!(!store
        .delete_passkey(eve, key.id, T0, &Aftermath::default())
        .await
        .unwrap());
    assert!(store
        .delete_passkey(ada, key.id, T0, &Aftermath::default())
        .await
        .unwrap());
    assert!(store.passkeys(ada).await.unwrap().is_empty());
}

fn ceremony(user_id: Option<Uuid>, expires_at: OffsetDateTime) -> Ceremony {
    Ceremony {
        id: Uuid::now_v7(),
        user_id,
        kind: CeremonyKind::Register,
        state_json: "{\"s\":1}".into(),
        name: Some("Key".into()),
        created_at: T0,
        expires_at,
        owner: format!(
            "register:{}",
            user_id.map(|u| u.to_string()).unwrap_or_default()
        ),
    }
}

/// A ceremony is taken once, by one of many concurrent callers; expired ones
/// are cleaned up.
pub async fn ceremonies_are_taken_once(store: Arc<dyn Store>) {
    let id = user(&*store, "ceremony@example.com").await;
    let c = ceremony(Some(id), T0 + Duration::minutes(5));
    store.create_ceremony(&c, 5).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store.take_ceremony(c.id).await.unwrap()
        }));
    }
    let mut taken = Vec::new();
    for task in tasks {
        taken.extend(task.await.unwrap());
    }
    assert_eq!(taken, vec![c]);
    let old = ceremony(None, T0);
    store.create_ceremony(&old, 5).await.unwrap();
    let removed = store
        .delete_expired(Expired::WebauthnCeremonies, T0 + Duration::seconds(1), 100)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(store.take_ceremony(old.id).await.unwrap(), None);
}

/// Each owner keeps only its newest open ceremonies: a flood of starts keeps
/// a bounded number of rows; other owners' ceremonies stay.
pub async fn ceremonies_are_capped_per_owner(store: &dyn Store) {
    let id = user(store, "flood@example.com").await;
    let mut made = Vec::new();
    for i in 0..12 {
        let mut c = ceremony(Some(id), T0 + Duration::minutes(5));
        c.created_at = T0 + Duration::seconds(i);
        store.create_ceremony(&c, 3).await.unwrap();
        made.push(c);
    }
    let mut other = ceremony(None, T0 + Duration::minutes(5));
    other.owner = "login:ip:abc".into();
    store.create_ceremony(&other, 3).await.unwrap();
    for (i, c) in made.iter().enumerate() {
        let kept = store.take_ceremony(c.id).await.unwrap().is_some();
        assert_eq!(kept, i >= 9, "ceremony {i}");
    }
    assert!(store.take_ceremony(other.id).await.unwrap().is_some());
}

/// The passkey maximum holds inside the insert: concurrent registrations of
/// one user cannot store more than it.
pub async fn concurrent_registrations_never_exceed_the_passkey_maximum(store: Arc<dyn Store>) {
    let ada = user(&*store, "many@example.com").await;
    let tasks: Vec<_> = (0..12u8)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .insert_passkey(&passkey(ada, 100 + i), &Aftermath::default(), 5)
                    .await
            })
        })
        .collect();
    let mut stored = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => stored += 1,
            Err(StoreError::Conflict { constraint }) => {
                assert_eq!(constraint, latchkey_core::ports::PASSKEY_LIMIT);
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(stored, 5);
    assert_eq!(store.passkeys(ada).await.unwrap().len(), 5);
}
