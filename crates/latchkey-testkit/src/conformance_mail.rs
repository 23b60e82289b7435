//! Conformance cases for email verification tokens and the mail outbox.

// A test suite living in a library: failing loudly is its job.
#![allow(
    clippy::missing_panics_doc,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use latchkey_core::account::{normalize_email, NewUser};
use latchkey_core::mail::{hash_link_token, new_link_token};
use latchkey_core::ports::{Aftermath, NewVerification, Store, StoreError};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const T0: OffsetDateTime = datetime!(2026-07-01 09:00:00 UTC);

fn user(email: &str) -> NewUser {
    NewUser {
        id: Uuid::now_v7(),
        email: email.to_owned(),
        email_normalized: normalize_email(email),
        name: None,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: T0,
    }
}

fn verification(user_id: Uuid) -> (String, NewVerification, latchkey_core::mail::QueuedMail) {
    let (text, hash) = new_link_token("lk_ev_");
    let token = NewVerification {
        token_hash: hash,
        user_id,
        created_at: T0,
        expires_at: T0 + Duration::hours(24),
    };
    let mail = crate::conformance::queued(
        "v@example.com",
        "Verify",
        format!("link {}", text.as_str()),
        T0,
    );
    (text.to_string(), token, mail)
}

/// A token verifies its account once, only before expiry; its mail was queued
/// in the same transaction.
pub async fn verification_tokens_are_single_use_and_expire(store: &dyn Store) {
    let u = user("v@example.com");
    let (text, token, mail) = verification(u.id);
    store
        .create_user_with_verification(&u, Some((&token, &mail)))
        .await
        .unwrap();
    assert_eq!(store.pending_mail().await.unwrap(), 1);
    let hash = hash_link_token(&text);
    assert_eq!(
        store
            .consume_verification(&hash, T0 + Duration::hours(25))
            .await
            .unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        store
            .consume_verification(&hash, T0 + Duration::hours(1))
            .await
            .unwrap(),
        Some(u.id)
    );
    assert_eq!(
        store
            .consume_verification(&hash, T0 + Duration::hours(1))
            .await
            .unwrap(),
        None,
        "used"
    );
    assert_eq!(
        store.consume_verification(&[0u8; 32], T0).await.unwrap(),
        None,
        "unknown"
    );
    let verified = store.user_by_id(u.id).await.unwrap().unwrap();
    assert_eq!(verified.email_verified_at, Some(T0 + Duration::hours(1)));

    let (second, token2, mail2) = verification(u.id);
    store.issue_verification(&token2, &mail2).await.unwrap();
    assert_eq!(store.pending_mail().await.unwrap(), 2);
    assert!(store
        .consume_verification(&hash_link_token(&second), T0)
        .await
        .unwrap()
        .is_some());
}

/// A duplicate sign-up rolls back entirely: no token, no mail.
pub async fn duplicate_signup_queues_nothing(store: &dyn Store) {
    let first = user("dup-mail@example.com");
    store
        .create_user_with_verification(&first, None)
        .await
        .unwrap();
    let second = user("DUP-mail@example.com");
    let (text, token, mail) = verification(second.id);
    let err = store
        .create_user_with_verification(&second, Some((&token, &mail)))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(store.pending_mail().await.unwrap(), 0);
    assert_eq!(
        store
            .consume_verification(&hash_link_token(&text), T0)
            .await
            .unwrap(),
        None
    );
}

/// Claims lease messages; retries wait; sent and failed messages leave the queue.
pub async fn outbox_claims_lease_retry_and_finish(store: &dyn Store) {
    for i in 0..3 {
        store
            .enqueue_mail(&crate::conformance::queued(
                "o@example.com",
                &format!("m{i}"),
                "body".into(),
                T0,
            ))
            .await
            .unwrap();
    }
    let lease = Duration::minutes(1);
    let first = store.claim_mail(T0, lease, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|m| m.attempts == 1));
    let rest = store.claim_mail(T0, lease, 10).await.unwrap();
    assert_eq!(rest.len(), 1, "leased messages are not claimed twice");
    assert!(store.claim_mail(T0, lease, 10).await.unwrap().is_empty());

    store.mark_mail_sent(first[0].id, T0).await.unwrap();
    store
        .mark_mail_failed(first[1].id, T0, "550 no such user")
        .await
        .unwrap();
    store
        .mark_mail_retry(rest[0].id, T0 + Duration::minutes(5), "connection refused")
        .await
        .unwrap();
    assert_eq!(store.pending_mail().await.unwrap(), 1);
    assert!(
        store
            .claim_mail(T0 + Duration::minutes(4), lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let again = store
        .claim_mail(T0 + Duration::minutes(5), lease, 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].id, again[0].attempts, again[0].subject.as_str()),
        (rest[0].id, 2, "m2")
    );
    assert_eq!(again[0].to, "o@example.com");
    // A worker that died: its lease runs out and the message is due again.
    assert_eq!(
        store
            .claim_mail(T0 + Duration::minutes(7), lease, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Concurrent claimers never get the same message.
pub async fn concurrent_claims_never_overlap(store: &dyn Store) {
    for i in 0..20 {
        store
            .enqueue_mail(&crate::conformance::queued(
                "c@example.com",
                &format!("c{i}"),
                "b".into(),
                T0,
            ))
            .await
            .unwrap();
    }
    let claims =
        futures::future::join_all((0..5).map(|_| store.claim_mail(T0, Duration::minutes(1), 6)))
            .await;
    let mut ids: Vec<Uuid> = claims
        .into_iter()
        .flat_map(|c| c.unwrap())
        .map(|m| m.id)
        .collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (ids.len(), total),
        (20, 20),
        "every message claimed exactly once"
    );
}

/// Reset tokens: the newest one only, read without spending, spent once with
/// the password change (history kept), refused once expired, queued with their
/// mail, cleaned up.
pub async fn password_reset_tokens_are_single_use(store: &dyn Store) {
    let u = user("reset@example.com");
    let created = store.create_user(&u).await.unwrap();
    let issue = |hash: [u8; 32], at: OffsetDateTime| NewVerification {
        token_hash: hash,
        user_id: created.id,
        created_at: at,
        expires_at: at + Duration::minutes(30),
    };
    let mail = || crate::conformance::queued("reset@example.com", "Reset", "link".into(), T0);
    store
        .issue_password_reset(&issue([1; 32], T0), &mail())
        .await
        .unwrap();
    store
        .issue_password_reset(&issue([2; 32], T0), &mail())
        .await
        .unwrap();
    assert_eq!(store.pending_mail().await.unwrap(), 2);
    assert_eq!(
        store.password_reset_user(&[1; 32], T0).await.unwrap(),
        None,
        "superseded"
    );
    assert_eq!(
        store.password_reset_user(&[2; 32], T0).await.unwrap(),
        Some(created.id)
    );
    let late = T0 + Duration::minutes(30);
    assert_eq!(
        store.password_reset_user(&[2; 32], late).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .complete_password_reset(&[2; 32], "new-hash", late, 5, &Aftermath::default())
            .await
            .unwrap(),
        None,
        "expired"
    );
    let at = T0 + Duration::minutes(1);
    assert_eq!(
        store
            .complete_password_reset(&[2; 32], "new-hash", at, 5, &Aftermath::default())
            .await
            .unwrap(),
        Some(created.id)
    );
    assert_eq!(
        store
            .complete_password_reset(&[2; 32], "other-hash", at, 5, &Aftermath::default())
            .await
            .unwrap(),
        None,
        "single use"
    );
    let after = store.user_by_id(created.id).await.unwrap().unwrap();
    assert_eq!(after.password_hash, "new-hash");
    assert_eq!(after.password_changed_at, at);
    assert_eq!(
        store.password_history(created.id, 10).await.unwrap(),
        std::slice::from_ref(&u.password_hash)
    );
    let removed = store
        .delete_expired(latchkey_core::ports::Expired::PasswordResetTokens, at, 100)
        .await
        .unwrap();
    assert_eq!(
        removed, 0,
        "the reset deleted the user's reset tokens itself"
    );
}
