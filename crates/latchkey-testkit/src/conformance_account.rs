//! Conformance cases for email changes and HTML mail in the outbox (run on
//! every backend).

// A test suite living in a library: failing loudly is its job.
#![allow(
    clippy::missing_panics_doc,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use latchkey_core::account::{normalize_email, NewUser};
use latchkey_core::ports::{
    Aftermath, NewEmailChange, NewVerification, Revocation, Store, StoreError,
};
use latchkey_core::session::RevokeReason;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const T0: OffsetDateTime = datetime!(2026-11-28 09:00:00 UTC);

async fn user(store: &dyn Store, email: &str) -> Uuid {
    let u = NewUser {
        id: Uuid::now_v7(),
        email: email.to_owned(),
        email_normalized: normalize_email(email),
        name: None,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: T0,
    };
    store.create_user(&u).await.unwrap().id
}

/// A live session of `user_id` under its current stamp (an email change is
/// asked for from one).
async fn asking(store: &dyn Store, user_id: Uuid) -> Uuid {
    let stamp = store
        .user_by_id(user_id)
        .await
        .unwrap()
        .unwrap()
        .security_stamp;
    let session = crate::conformance_sessions::session(user_id, T0);
    let (_, token) =
        latchkey_core::session::new_refresh_token(session.id, T0, session.absolute_expires_at);
    store
        .create_session(&session, &token, 100, stamp, &Aftermath::default())
        .await
        .unwrap();
    session.id
}

fn change(user_id: Uuid, session_id: Uuid, hash: u8, new_email: &str) -> NewEmailChange {
    NewEmailChange {
        token: NewVerification {
            token_hash: [hash; 32],
            user_id,
            created_at: T0,
            expires_at: T0 + Duration::hours(24),
        },
        new_email: new_email.to_owned(),
        new_email_normalized: normalize_email(new_email),
        security_stamp: 0,
        session_id,
    }
}

fn mail(to: &str) -> latchkey_core::mail::QueuedMail {
    crate::conformance::queued(to, "Subject", "text".into(), T0)
}

/// Only the newest token of a user works, read without spending, spent once;
/// the account gets the new address verified, with the notice queued in the
/// same transaction; an expired token does nothing; cleanup removes used ones.
pub async fn email_change_tokens_are_single_use(store: &dyn Store) {
    let uid = user(store, "old@example.com").await;
    let sid = asking(store, uid).await;
    let mails = || [mail("old@example.com"), mail("New@Example.com")];
    assert!(store
        .issue_email_change(&change(uid, sid, 1, "New@Example.com"), &mails(), T0)
        .await
        .unwrap());
    assert!(store
        .issue_email_change(&change(uid, sid, 2, "New@Example.com"), &mails(), T0)
        .await
        .unwrap());
    assert_eq!(store.pending_mail().await.unwrap(), 4);
    assert_eq!(
        store.pending_email_change(&[1; 32], T0).await.unwrap(),
        None
    );
    let pending = store
        .pending_email_change(&[2; 32], T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (pending.user_id, pending.new_email.as_str()),
        (uid, "New@Example.com")
    );
    let late = T0 + Duration::hours(24);
    assert_eq!(
        store.pending_email_change(&[2; 32], late).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .complete_email_change(&[2; 32], late, None)
            .await
            .unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        store
            .complete_email_change(&[1; 32], T0, None)
            .await
            .unwrap(),
        None,
        "superseded"
    );
    let at = T0 + Duration::minutes(5);
    let notice = mail("old@example.com");
    assert_eq!(
        store
            .complete_email_change(&[2; 32], at, Some(&notice))
            .await
            .unwrap(),
        Some(uid)
    );
    assert_eq!(
        store.pending_mail().await.unwrap(),
        5,
        "the notice is queued"
    );
    assert_eq!(
        store
            .complete_email_change(&[2; 32], at, None)
            .await
            .unwrap(),
        None,
        "single use"
    );
    let after = store.user_by_id(uid).await.unwrap().unwrap();
    assert_eq!(after.email, "New@Example.com");
    assert_eq!(after.email_normalized, "new@example.com");
    assert_eq!(after.email_verified_at, Some(at));
    assert!(store
        .user_by_email("old@example.com")
        .await
        .unwrap()
        .is_none());
    let removed = store
        .delete_expired(latchkey_core::ports::Expired::EmailChangeTokens, at, 100)
        .await
        .unwrap();
    assert_eq!(removed, 1, "the used token");
}

/// An address taken since the request is a conflict at confirmation: nothing
/// changes, no notice is queued, and the token stays unused.
pub async fn a_taken_address_is_a_conflict_at_confirmation(store: &dyn Store) {
    let a = user(store, "a@example.com").await;
    let sid = asking(store, a).await;
    assert!(store
        .issue_email_change(&change(a, sid, 7, "b@example.com"), &[], T0)
        .await
        .unwrap());
    user(store, "B@example.com").await;
    let notice = mail("a@example.com");
    let before = store.pending_mail().await.unwrap();
    let err = store
        .complete_email_change(&[7; 32], T0, Some(&notice))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(store.pending_mail().await.unwrap(), before);
    let still = store.user_by_id(a).await.unwrap().unwrap();
    assert_eq!(still.email, "a@example.com");
    assert!(store
        .pending_email_change(&[7; 32], T0)
        .await
        .unwrap()
        .is_some());
}

fn link(user_id: Uuid, hash: u8) -> NewVerification {
    NewVerification {
        token_hash: [hash; 32],
        user_id,
        created_at: T0,
        expires_at: T0 + Duration::hours(1),
    }
}

/// Whether the email change of token `hash` still works (read and spend).
async fn change_works(store: &dyn Store, hash: u8) -> bool {
    let read = store
        .pending_email_change(&[hash; 32], T0)
        .await
        .unwrap()
        .is_some();
    let spent = store
        .complete_email_change(&[hash; 32], T0, None)
        .await
        .unwrap()
        .is_some();
    assert_eq!(read, spent, "read and spend agree");
    spent
}

/// Every revocation of a user's sessions (a sign-out everywhere, or the
/// aftermath of a password change, reset or factor change) voids the user's
/// pending email changes, and a change asked for under an older security
/// stamp never completes (it raced such a revocation): an attacker's link
/// cannot outlive the owner's recovery.
pub async fn revocations_void_pending_email_changes(store: &dyn Store) {
    let uid = user(store, "owner@example.com").await;
    let stamp = || async { store.user_by_id(uid).await.unwrap().unwrap().security_stamp };
    let s0 = stamp().await;
    let issue = |hash: u8, stamp: i64, sid: Uuid| {
        let mut c = change(uid, sid, hash, "attacker@evil.example");
        c.security_stamp = stamp;
        c
    };
    let sid = asking(store, uid).await;
    assert!(store
        .issue_email_change(&issue(1, s0, sid), &[], T0)
        .await
        .unwrap());
    store
        .revoke_user_sessions(uid, None, RevokeReason::Logout, T0)
        .await
        .unwrap();
    assert!(stamp().await > s0, "a sign-out everywhere moves the stamp");
    assert!(!change_works(store, 1).await, "voided by the sign-out");

    let s1 = stamp().await;
    let sid = asking(store, uid).await;
    assert!(store
        .issue_email_change(&issue(2, s1, sid), &[], T0)
        .await
        .unwrap());
    let revoke = Aftermath {
        revoke: Some(Revocation {
            keep: None,
            reason: RevokeReason::PasswordReset,
        }),
        ..Aftermath::default()
    };
    store
        .change_password_hash(uid, "new hash", T0, 0, &revoke)
        .await
        .unwrap();
    assert!(
        !change_works(store, 2).await,
        "voided by the password change"
    );

    // Asked for under the stamp before a change that committed first, from
    // a session that is live again: refused when issued, and a token that got
    // in under the old stamp (as before this check) never completes.
    let sid = asking(store, uid).await;
    assert!(
        !store
            .issue_email_change(&issue(3, s1, sid), &[], T0)
            .await
            .unwrap(),
        "a stale stamp is refused"
    );
    assert!(
        !change_works(store, 3).await,
        "a stale stamp never completes"
    );

    let now = stamp().await;
    assert!(store
        .issue_email_change(&issue(4, now, sid), &[], T0)
        .await
        .unwrap());
    assert!(change_works(store, 4).await, "a current one still works");
    let changed = store.user_by_id(uid).await.unwrap().unwrap();
    assert_eq!(changed.email, "attacker@evil.example");
}

/// A password change deletes the pending reset and verification links, and
/// so does a completed email change: a link mailed before either cannot undo
/// it. Other users' links stay.
pub async fn password_and_email_changes_void_mailed_links(store: &dyn Store) {
    let uid = user(store, "ada@example.com").await;
    let other = user(store, "bob@example.com").await;
    let queue = |to: &str| mail(to);
    let works = |hash: u8| async move {
        store
            .password_reset_user(&[hash; 32], T0)
            .await
            .unwrap()
            .is_some()
    };
    store
        .issue_password_reset(&link(uid, 1), &queue("ada@example.com"))
        .await
        .unwrap();
    store
        .issue_password_reset(&link(other, 2), &queue("bob@example.com"))
        .await
        .unwrap();
    store
        .issue_verification(&link(uid, 3), &queue("ada@example.com"))
        .await
        .unwrap();
    store
        .change_password_hash(uid, "new hash", T0, 0, &Aftermath::default())
        .await
        .unwrap();
    assert!(!works(1).await, "the reset link is void");
    assert_eq!(
        store.consume_verification(&[3; 32], T0).await.unwrap(),
        None,
        "the verification link is void"
    );
    assert!(works(2).await, "another user's link stays");

    store
        .issue_password_reset(&link(uid, 4), &queue("ada@example.com"))
        .await
        .unwrap();
    let sid = asking(store, uid).await;
    assert!(store
        .issue_email_change(&change(uid, sid, 5, "ada@new.example"), &[], T0)
        .await
        .unwrap());
    assert_eq!(
        store
            .complete_email_change(&[5; 32], T0, None)
            .await
            .unwrap(),
        Some(uid)
    );
    assert!(!works(4).await, "the email change voided it");
    assert!(works(2).await);
}

/// The sealed body of a message comes back from the outbox exactly as it
/// went in, and a finished message's body is scrubbed.
pub async fn html_mail_round_trips(store: &dyn Store) {
    let seal = crate::conformance::test_outbox_seal();
    let mut m =
        latchkey_core::mail::OutgoingMail::new("x@example.com", "Subject", "text".into(), T0);
    m.body_html = Some("<p>Hello &amp; welcome</p>".into());
    store.enqueue_mail(&seal.seal(&m)).await.unwrap();
    let plain = mail("y@example.com");
    store.enqueue_mail(&plain).await.unwrap();
    let claimed = store
        .claim_mail(T0, Duration::minutes(2), 10)
        .await
        .unwrap();
    let got = claimed.iter().find(|c| c.id == m.id).unwrap();
    assert!(matches!(
        got.body,
        latchkey_core::mail::QueuedBody::Sealed(_)
    ));
    let opened = seal.open(got).unwrap();
    assert_eq!(
        opened.body_html.as_deref(),
        Some("<p>Hello &amp; welcome</p>")
    );
    assert_eq!(opened.body_text, "text");
    let got = claimed.iter().find(|c| c.id == plain.id).unwrap();
    assert_eq!(seal.open(got).unwrap().body_html, None);
}

/// Lockout counters are removed once idle for a day with no lock in force;
/// recent ones and ones still locked stay.
pub async fn idle_lockout_counters_are_cleaned_up(store: &dyn Store) {
    use latchkey_core::ports::Expired;
    let now = T0 + Duration::days(3);
    // Idle for two days, never locked: removed.
    store.reserve_throttle_attempt(&[1; 32], T0).await.unwrap();
    // Failed an hour ago: kept.
    store
        .reserve_throttle_attempt(&[2; 32], now - Duration::hours(1))
        .await
        .unwrap();
    // Old failure, but locked until tomorrow: kept.
    store.reserve_throttle_attempt(&[3; 32], T0).await.unwrap();
    assert!(store
        .lock_throttle(&[3; 32], 1, now + Duration::days(1))
        .await
        .unwrap());
    let removed = store
        .delete_expired(Expired::LoginThrottles, now, 100)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert!(store.throttle(&[1; 32]).await.unwrap().is_none());
    assert!(store.throttle(&[2; 32]).await.unwrap().is_some());
    assert!(store.throttle(&[3; 32]).await.unwrap().is_some());
}

/// Reserved attempts: each gets its own count, however many race; none is
/// counted while a lock is in force; a released one is given back, never
/// below zero.
pub async fn throttle_attempts_are_reserved_one_by_one(store: std::sync::Arc<dyn Store>) {
    let key = [9u8; 32];
    let tasks: Vec<_> = (0..30)
        .map(|_| {
            let store = std::sync::Arc::clone(&store);
            tokio::spawn(async move { store.reserve_throttle_attempt(&key, T0).await.unwrap() })
        })
        .collect();
    let mut counts = Vec::new();
    for task in tasks {
        counts.push(task.await.unwrap().failures);
    }
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=30).collect::<Vec<u32>>(),
        "every attempt its own count"
    );
    store.release_throttle_attempt(&key, None).await.unwrap();
    assert_eq!(store.throttle(&key).await.unwrap().unwrap().failures, 29);
    assert!(store
        .lock_throttle(&key, 5, T0 + Duration::minutes(15))
        .await
        .unwrap());
    let during = store
        .reserve_throttle_attempt(&key, T0 + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(
        (during.failures, during.lock_count),
        (0, 1),
        "not counted while locked"
    );
    assert_eq!(during.locked_until, Some(T0 + Duration::minutes(15)));
    let after = store
        .reserve_throttle_attempt(&key, T0 + Duration::minutes(16))
        .await
        .unwrap();
    assert_eq!(after.failures, 1, "counted again once the lock ended");
    for _ in 0..3 {
        store.release_throttle_attempt(&key, None).await.unwrap();
    }
    assert_eq!(store.throttle(&key).await.unwrap().unwrap().failures, 0);
}

/// Each reservation reports when the attempt before it was made; an attempt
/// refused unchecked and given back with that time puts it back (the
/// earliest wins, whatever order racing refusals end in), so refusals never
/// make reserved counts look recent.
pub async fn refused_attempts_leave_the_last_attempt_time(store: std::sync::Arc<dyn Store>) {
    let key = [10u8; 32];
    let at = |s: i64| T0 + Duration::seconds(s);
    let first = store.reserve_throttle_attempt(&key, at(0)).await.unwrap();
    assert_eq!(
        first.previous_attempt_at, None,
        "a new row has no previous attempt"
    );
    let second = store.reserve_throttle_attempt(&key, at(10)).await.unwrap();
    assert_eq!(second.previous_attempt_at, Some(at(0)));
    let a = store.reserve_throttle_attempt(&key, at(20)).await.unwrap();
    let b = store.reserve_throttle_attempt(&key, at(30)).await.unwrap();
    assert_eq!(
        (a.previous_attempt_at, b.previous_attempt_at),
        (Some(at(10)), Some(at(20)))
    );
    // Refused, given back in the other order.
    store
        .release_throttle_attempt(&key, b.previous_attempt_at)
        .await
        .unwrap();
    store
        .release_throttle_attempt(&key, a.previous_attempt_at)
        .await
        .unwrap();
    let next = store.reserve_throttle_attempt(&key, at(40)).await.unwrap();
    assert_eq!(next.failures, 3, "the refusals were given back");
    assert_eq!(
        next.previous_attempt_at,
        Some(at(10)),
        "the last checked attempt, not a refused one"
    );
    // A plain release leaves the time alone.
    store.release_throttle_attempt(&key, None).await.unwrap();
    let last = store.reserve_throttle_attempt(&key, at(50)).await.unwrap();
    assert_eq!((last.failures, last.previous_attempt_at), (3, Some(at(40))));
}

/// An email change belongs to the session that asked for it: it is refused
/// once that session is revoked or expired, and revoking that one session
/// (signing it out, or refresh-token reuse) deletes its pending change while
/// other sessions' changes are unaffected.
pub async fn an_email_change_dies_with_its_session(store: &dyn Store) {
    let uid = user(store, "owner@example.com").await;
    let thief = asking(store, uid).await;
    let owner = asking(store, uid).await;
    assert!(store
        .issue_email_change(&change(uid, thief, 1, "thief@evil.example"), &[], T0)
        .await
        .unwrap());
    assert!(store
        .revoke_session(uid, thief, RevokeReason::Logout, T0)
        .await
        .unwrap());
    assert!(!change_works(store, 1).await, "died with its session");
    assert!(
        !store
            .issue_email_change(&change(uid, thief, 2, "thief@evil.example"), &[], T0)
            .await
            .unwrap(),
        "a revoked session asks for nothing"
    );
    let expired = T0 + Duration::days(60);
    assert!(
        !store
            .issue_email_change(&change(uid, owner, 3, "ada@new.example"), &[], expired)
            .await
            .unwrap(),
        "nor does an expired one"
    );
    let other = user(store, "other@example.com").await;
    assert!(
        !store
            .issue_email_change(&change(other, owner, 4, "x@example.com"), &[], T0)
            .await
            .unwrap(),
        "nor another user's session"
    );
    assert!(store
        .issue_email_change(&change(uid, owner, 5, "ada@new.example"), &[], T0)
        .await
        .unwrap());
    assert!(
        change_works(store, 5).await,
        "the live session's change works"
    );
}
