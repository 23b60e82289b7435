//! The one store conformance suite. Every case takes a fresh, migrated store and is
//! run against every backend by [`store_conformance_tests!`](crate::store_conformance_tests),
//! so SQLite and PostgreSQL cannot behave differently without a test failing.

// This module is a test suite that lives in a library so every backend can run it:
// failing loudly is its job.
#![allow(
    clippy::missing_panics_doc,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::sync::Arc;

use latchkey_core::account::{normalize_email, NewUser};
use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::ports::{Aftermath, Store, StoreError};
use time::macros::datetime;
use uuid::Uuid;

fn new_user(email: &str, name: Option<&str>) -> NewUser {
    NewUser {
        id: Uuid::now_v7(),
        email: email.trim().to_owned(),
        email_normalized: normalize_email(email),
        name: name.map(str::to_owned),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaA".to_owned(),
        created_at: SystemClock.now(),
    }
}

/// `ping` answers on a live store.
pub async fn ping_answers(store: &dyn Store) {
    store.ping().await.unwrap();
}

/// Running the migrations again changes nothing and fails nothing.
pub async fn migrate_is_idempotent(store: &dyn Store) {
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let user = new_user("again@example.com", None);
    store.create_user(&user).await.unwrap();
    store.migrate().await.unwrap();
    assert!(store.user_by_id(user.id).await.unwrap().is_some());
}

/// What is written reads back equal, by id and by normalized email, including
/// microsecond timestamps, absent names and non-ASCII text.
pub async fn users_round_trip_exactly(store: &dyn Store) {
    let cases = [
        new_user("  Alice@Example.COM ", Some("Alice")),
        new_user(
            "zoe@example.com",
            Some("Zoë 'O\"Brien'; DROP TABLE users; --"),
        ),
        new_user("用户@例子.广告", None),
    ];
    for mut user in cases {
        user.created_at = datetime!(2026-03-04 05:06:07.123_456 UTC);
        let created = store.create_user(&user).await.unwrap();
        assert_eq!(created.id, user.id);
        assert_eq!(created.email, user.email);
        assert_eq!(created.email_normalized, user.email_normalized);
        assert_eq!(created.name, user.name);
        assert_eq!(created.password_hash, user.password_hash);
        assert_eq!(created.created_at, user.created_at);
        assert_eq!(created.updated_at, user.created_at);
        assert_eq!(created.failed_login_count, 0);
        assert!(
            created.email_verified_at.is_none()
                && created.disabled_at.is_none()
                && created.last_login_at.is_none()
        );

        let by_id = store.user_by_id(user.id).await.unwrap().expect("by id");
        assert_eq!(by_id, created);
        let by_email = store
            .user_by_email(&user.email_normalized)
            .await
            .unwrap()
            .expect("by email");
        assert_eq!(by_email, created);
    }
}

/// Unknown ids and emails are `None`, not errors.
pub async fn unknown_users_are_none(store: &dyn Store) {
    assert!(store.user_by_id(Uuid::now_v7()).await.unwrap().is_none());
    assert!(store
        .user_by_email("nobody@example.com")
        .await
        .unwrap()
        .is_none());
    assert!(store.user_by_email("").await.unwrap().is_none());
    assert!(store.user_by_email("' OR '1'='1").await.unwrap().is_none());
}

/// A second account with the same normalized email is a named conflict.
pub async fn duplicate_email_is_a_conflict(store: &dyn Store) {
    store
        .create_user(&new_user("dup@example.com", None))
        .await
        .unwrap();
    let err = store
        .create_user(&new_user("  DUP@example.com", None))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                constraint: "users_email_normalized"
            }
        ),
        "{err:?}"
    );
}

/// Twenty concurrent sign-ups with one address: exactly one succeeds.
pub async fn concurrent_duplicate_creates_admit_exactly_one(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = Arc::clone(&store);
        let email = if i % 2 == 0 {
            "race@example.com"
        } else {
            "RACE@example.com"
        };
        tasks.push(tokio::spawn(async move {
            store.create_user(&new_user(email, None)).await
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((ok, conflicts), (1, 19));
}

/// A failure made before the last successful sign-in but recorded after it
/// (bookkeeping that lands late) is not counted; one made after it is.
pub async fn a_failure_older_than_the_last_success_is_not_counted(store: &dyn Store) {
    let user = new_user("late@example.com", None);
    store.create_user(&user).await.unwrap();
    let t = datetime!(2026-06-01 08:00:00.000_001 UTC);
    assert_eq!(store.record_login_failure(user.id, t).await.unwrap(), 1);
    store.record_login_success(user.id, t).await.unwrap();
    let before = t - time::Duration::milliseconds(5);
    assert_eq!(
        store.record_login_failure(user.id, before).await.unwrap(),
        0
    );
    let stored = store.user_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(stored.failed_login_count, 0);
    assert_eq!(store.record_login_failure(user.id, t).await.unwrap(), 1);
}

/// Failure counts increase atomically, success resets them, hashes can change.
pub async fn login_bookkeeping(store: &dyn Store) {
    let user = new_user("counted@example.com", None);
    store.create_user(&user).await.unwrap();
    let t = datetime!(2026-06-01 08:00:00.000_001 UTC);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        tasks.push(store.record_login_failure(user.id, t));
    }
    // Polled together: the ten updates race in the database.
    let counts: Vec<i32> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut sorted = counts.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (1..=10).collect::<Vec<_>>(),
        "every failure counted exactly once"
    );
    assert_eq!(
        store
            .user_by_id(user.id)
            .await
            .unwrap()
            .unwrap()
            .failed_login_count,
        10
    );
    assert_eq!(
        store.record_login_failure(Uuid::now_v7(), t).await.unwrap(),
        0,
        "unknown user"
    );
    store.record_login_success(user.id, t).await.unwrap();
    let after = store.user_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(
        (
            after.failed_login_count,
            after.last_login_at,
            after.updated_at
        ),
        (0, Some(t), t)
    );
    assert!(store
        .update_password_hash(user.id, &user.password_hash, "$argon2id$new", t)
        .await
        .unwrap());
    assert_eq!(
        store
            .user_by_id(user.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$argon2id$new"
    );
    store.mark_email_verified(user.id, t).await.unwrap();
    let later = t + time::Duration::hours(1);
    store.mark_email_verified(user.id, later).await.unwrap();
    assert_eq!(
        store
            .user_by_id(user.id)
            .await
            .unwrap()
            .unwrap()
            .email_verified_at,
        Some(t),
        "first verification wins"
    );
    let name = "Zoë \u{1F600} '; --";
    store.update_name(user.id, Some(name), t).await.unwrap();
    assert_eq!(
        store
            .user_by_id(user.id)
            .await
            .unwrap()
            .unwrap()
            .name
            .as_deref(),
        Some(name)
    );
    store.update_name(user.id, None, t).await.unwrap();
    assert!(store
        .user_by_id(user.id)
        .await
        .unwrap()
        .unwrap()
        .name
        .is_none());
}

/// After `close`, calls fail `Unavailable`: never a panic, never `Internal`.
pub async fn closed_store_is_unavailable(store: &dyn Store) {
    store.close().await;
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(matches!(
        store.user_by_id(Uuid::now_v7()).await,
        Err(StoreError::Unavailable(_))
    ));
    let err = store
        .create_user(&new_user("late@example.com", None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

/// Signing keys: kept per algorithm, oldest first, byte-exact (activation
/// time too), unique kids, deletable.
pub async fn signing_keys_round_trip(store: &dyn Store) {
    use latchkey_core::ports::StoredSigningKey;
    let t0 = time::macros::datetime!(2026-07-01 09:00:00 UTC);
    let key = |kid: &str, alg: &str, minutes: i64| StoredSigningKey {
        kid: kid.to_owned(),
        algorithm: alg.to_owned(),
        sealed_key: [&[1u8, 0, 255][..], kid.as_bytes()].concat(),
        created_at: t0 + time::Duration::minutes(minutes),
        // Activation times round-trip apart from creation.
        activates_at: t0 + time::Duration::minutes(minutes) + time::Duration::seconds(360),
    };
    assert!(store.signing_keys("EdDSA").await.unwrap().is_empty());
    let newer = key("kid-b", "EdDSA", 10);
    let older = key("kid-a", "EdDSA", 0);
    let other = key("kid-c", "ES256", 5);
    for k in [&newer, &older, &other] {
        store.insert_signing_key(k).await.unwrap();
    }
    assert_eq!(
        store.signing_keys("EdDSA").await.unwrap(),
        vec![older.clone(), newer.clone()]
    );
    assert_eq!(store.signing_keys("ES256").await.unwrap(), vec![other]);
    let err = store.insert_signing_key(&older).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert!(store.delete_signing_key("kid-a").await.unwrap());
    assert!(!store.delete_signing_key("kid-a").await.unwrap());
    assert_eq!(store.signing_keys("EdDSA").await.unwrap(), vec![newer]);
}

/// Password history: a change moves the old hash to the history (newest first,
/// trimmed to `keep`); a re-hash of the same password adds nothing.
pub async fn password_history_keeps_the_newest(store: &dyn Store) {
    let t0 = datetime!(2026-07-01 09:00:00 UTC);
    let mut user = new_user("history@example.com", None);
    user.password_hash = "h0".into();
    let id = store.create_user(&user).await.unwrap().id;
    assert!(store.password_history(id, 10).await.unwrap().is_empty());
    for (i, hash) in ["h1", "h2", "h3"].iter().enumerate() {
        let at = t0 + time::Duration::minutes(i64::try_from(i).unwrap());
        store
            .change_password_hash(id, hash, at, 2, &Aftermath::default())
            .await
            .unwrap();
    }
    assert_eq!(store.password_history(id, 10).await.unwrap(), ["h2", "h1"]);
    assert_eq!(store.password_history(id, 1).await.unwrap(), ["h2"]);
    let current = store.user_by_id(id).await.unwrap().unwrap();
    assert_eq!(current.password_hash, "h3");
    // A re-hash of a password that was changed meanwhile writes nothing.
    assert!(!store
        .update_password_hash(id, "h2", "h2-rehashed", t0)
        .await
        .unwrap());
    assert!(store
        .update_password_hash(id, "h3", "h3-rehashed", t0)
        .await
        .unwrap());
    assert_eq!(store.password_history(id, 10).await.unwrap(), ["h2", "h1"]);
    store
        .change_password_hash(id, "h4", t0, 0, &Aftermath::default())
        .await
        .unwrap();
    assert!(
        store.password_history(id, 10).await.unwrap().is_empty(),
        "keep 0"
    );
}

/// The keyring conformance cases seal queued mail with (bodies are opaque to
/// the store).
pub fn test_outbox_seal() -> latchkey_core::mail::OutboxSeal {
    latchkey_core::mail::OutboxSeal::new(latchkey_core::seal::Keyring::new(
        latchkey_core::mail::OUTBOX_SEAL_PURPOSE,
        b"the conformance suite's master key, 32+ bytes",
        &[],
    ))
}

/// A message to `to`, sealed as the outbox stores it.
pub fn queued(
    to: &str,
    subject: &str,
    text: String,
    at: time::OffsetDateTime,
) -> latchkey_core::mail::QueuedMail {
    test_outbox_seal().seal(&latchkey_core::mail::OutgoingMail::new(
        to, subject, text, at,
    ))
}

/// Expands to one `#[tokio::test]` per conformance case for a backend.
/// `$fresh` is an async fn returning `Option<guard>` where the guard derefs to a
/// store (`None` = backend not available, test skipped). Attributes after it
/// go on every case: the PostgreSQL suite passes
/// `#[cfg_attr(latchkey_postgres_unset, ignore = "...")]` (the cfg comes from
/// this crate's build script), so a build without `LATCHKEY_TEST_POSTGRES_URL`
/// lists its cases as ignored, with the reason, instead of passing them unrun.
#[macro_export]
macro_rules! store_conformance_tests {
    ($backend:ident, $fresh:path $(, #[$attr:meta])* $(,)?) => {
        mod $backend {
            use std::sync::Arc;

            use latchkey_core::ports::Store;
            use $crate::conformance as c;
            use $crate::conformance_account as ca;
            use $crate::conformance_idempotency as ci;
            use $crate::conformance_mail as cm;
            use $crate::conformance_mfa as cf;
            use $crate::conformance_roles as cr;
            use $crate::conformance_sessions as cs;

            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    $(#[$attr])*
                    async fn $name() {
                        let Some(guard) = $fresh().await else { return };
                        c::$name(&*guard).await;
                    }
                };
            }

            case!(ping_answers);
            case!(migrate_is_idempotent);
            case!(users_round_trip_exactly);
            case!(unknown_users_are_none);
            case!(duplicate_email_is_a_conflict);
            case!(closed_store_is_unavailable);
            case!(login_bookkeeping);
            case!(a_failure_older_than_the_last_success_is_not_counted);
            case!(signing_keys_round_trip);
            case!(password_history_keeps_the_newest);

            macro_rules! session_case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    $(#[$attr])*
                    async fn $name() {
                        let Some(guard) = $fresh().await else { return };
                        cs::$name(&*guard).await;
                    }
                };
            }

            macro_rules! mail_case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    $(#[$attr])*
                    async fn $name() {
                        let Some(guard) = $fresh().await else { return };
                        cm::$name(&*guard).await;
                    }
                };
            }

            macro_rules! mfa_case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    $(#[$attr])*
                    async fn $name() {
                        let Some(guard) = $fresh().await else { return };
                        cf::$name(&*guard).await;
                    }
                };
            }

            mfa_case!(totp_lifecycle);
            mfa_case!(recovery_codes_are_single_use);
            mfa_case!(mfa_challenges_are_single_use);

            mfa_case!(passkeys_round_trip);
            mfa_case!(ceremonies_are_capped_per_owner);

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$attr])*
            async fn concurrent_registrations_never_exceed_the_passkey_maximum() {
                let Some(guard) = $fresh().await else { return };
                let store: Arc<dyn Store> = Arc::new((*guard).clone());
                cf::concurrent_registrations_never_exceed_the_passkey_maximum(store).await;
                drop(guard);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$attr])*
            async fn ceremonies_are_taken_once() {
                let Some(guard) = $fresh().await else { return };
                let store: Arc<dyn Store> = Arc::new((*guard).clone());
                cf::ceremonies_are_taken_once(store).await;
                drop(guard);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$attr])*
            async fn concurrent_attempts_admit_at_most_the_limit() {
                let Some(guard) = $fresh().await else { return };
                let store: Arc<dyn Store> = Arc::new((*guard).clone());
                cf::concurrent_attempts_admit_at_most_the_limit(store).await;
                drop(guard);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$attr])*
            async fn concurrent_code_uses_admit_exactly_one() {
                let Some(guard) = $fresh().await else { return };
                let store: Arc<dyn Store> = Arc::new((*guard).clone());
                cf::concurrent_code_uses_admit_exactly_one(store).await;
                drop(guard);
            }

            mail_case!(verification_tokens_are_single_use_and_expire);
            mail_case!(duplicate_signup_queues_nothing);
            mail_case!(outbox_claims_lease_retry_and_finish);
            mail_case!(concurrent_claims_never_overlap);
            mail_case!(password_reset_tokens_are_single_use);

            macro_rules! account_case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    $(#[$attr])*
                    async fn $name() {
                        let Some(guard) = $fresh().await else { return };
                        ca::$name(&*guard).await;
                    }
                };
            }

            macro_rules! roles_case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    $(#[$attr])*
                    async fn $name() {
                        let Some(guard) = $fresh().await else { return };
                        cr::$name(&*guard).await;
                    }
                };
            }

            roles_case!(roles_round_trip_and_names_are_unique);
            roles_case!(user_roles_come_with_the_account);
            roles_case!(the_last_admin_is_kept_under_races);
            roles_case!(racing_grants_and_revokes_lose_nothing);
            roles_case!(account_search_is_the_same_everywhere);
            roles_case!(imports_skip_taken_addresses_and_a_bad_role_writes_nothing);
            roles_case!(accounts_are_created_whole_and_deleted_with_what_they_hold);

            account_case!(email_change_tokens_are_single_use);
            account_case!(a_taken_address_is_a_conflict_at_confirmation);
            account_case!(revocations_void_pending_email_changes);
            account_case!(an_email_change_dies_with_its_session);
            account_case!(password_and_email_changes_void_mailed_links);
            account_case!(html_mail_round_trips);
            account_case!(idle_lockout_counters_are_cleaned_up);
            session_case!(device_familiarity_comes_from_stored_sessions);

            session_case!(sessions_round_trip);
            session_case!(revoking_many_sessions_revokes_every_one);
            session_case!(session_limit_evicts_the_oldest);
            session_case!(changes_write_their_aftermath);
            session_case!(a_sign_in_across_a_password_change_starts_nothing);
            session_case!(refresh_rotates_once_and_reuse_revokes_the_family);
            session_case!(reuse_within_grace_is_answered_without_revocation);
            session_case!(expired_tokens_and_sessions_are_refused);
            session_case!(revocation_is_scoped_to_the_owner);
            session_case!(access_token_denylist);
            session_case!(security_events_round_trip);
            session_case!(cleanup_removes_only_expired_data);

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$attr])*
            async fn sign_ins_racing_a_password_change_never_outlive_it() {
                let Some(guard) = $fresh().await else { return };
                let store: Arc<dyn Store> = Arc::new((*guard).clone());
                cs::sign_ins_racing_a_password_change_never_outlive_it(store).await;
                drop(guard);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$attr])*
            async fn concurrent_rotations_admit_exactly_one() {
                let Some(guard) = $fresh().await else { return };
                let store: Arc<dyn Store> = Arc::new((*guard).clone());
                cs::concurrent_rotations_admit_exactly_one(store).await;
                drop(guard);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$attr])*
            async fn throttle_attempts_are_reserved_one_by_one() {
                let Some(guard) = $fresh().await else { return };
                let store: Arc<dyn Store> = Arc::new((*guard).clone());
                ca::throttle_attempts_are_reserved_one_by_one(store).await;
                drop(guard);
            }

            #[tokio::test]
            $(#[$attr])*
            async fn refused_attempts_leave_the_last_attempt_time() {
                let Some(guard) = $fresh().await else { return };
                let store: Arc<dyn Store> = Arc::new((*guard).clone());
                ca::refused_attempts_leave_the_last_attempt_time(store).await;
                drop(guard);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$attr])*
            async fn concurrent_duplicate_creates_admit_exactly_one() {
                let Some(guard) = $fresh().await else { return };
                let store: Arc<dyn Store> = Arc::new((*guard).clone());
                c::concurrent_duplicate_creates_admit_exactly_one(store).await;
                drop(guard);
            }

            macro_rules! idempotency_case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    $(#[$attr])*
                    async fn $name() {
                        let Some(guard) = $fresh().await else { return };
                        ci::$name(&*guard).await;
                    }
                };
            }

            idempotency_case!(idempotency_claims_are_held_by_one_run);
            idempotency_case!(idempotency_abandoned_and_expired_records_are_taken_over);
            idempotency_case!(idempotency_records_go_with_their_user_and_their_day);

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$attr])*
            async fn concurrent_idempotency_claims_admit_exactly_one() {
                let Some(guard) = $fresh().await else { return };
                let store: Arc<dyn Store> = Arc::new((*guard).clone());
                ci::concurrent_idempotency_claims_admit_exactly_one(store).await;
                drop(guard);
            }
        }
    };
}
