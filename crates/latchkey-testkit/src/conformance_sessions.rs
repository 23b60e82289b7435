//! Conformance cases for sessions, refresh-token families, the access-token
//! denylist and security events (run on every backend).

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
use latchkey_core::ports::{Aftermath, Revocation, Store, StoreError, SECURITY_CHANGED};
use latchkey_core::session::{
    hash_refresh_token, new_refresh_token, Device, NewSession, RevokeReason, RotateOutcome,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const T0: OffsetDateTime = datetime!(2026-05-01 12:00:00 UTC);
const IDLE: Duration = Duration::days(7);

async fn user(store: &dyn Store) -> Uuid {
    let email = format!("{}@example.com", Uuid::now_v7().simple());
    let user = NewUser {
        id: Uuid::now_v7(),
        email_normalized: normalize_email(&email),
        email,
        name: None,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: T0,
    };
    store.create_user(&user).await.unwrap().id
}

/// A session of `user_id` created `at` (live 7 days idle, 30 absolute).
pub(crate) fn session(user_id: Uuid, at: OffsetDateTime) -> NewSession {
    NewSession {
        id: Uuid::now_v7(),
        user_id,
        created_at: at,
        idle_expires_at: at + IDLE,
        absolute_expires_at: at + Duration::days(30),
        ip: Some("203.0.113.7".into()),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0".into()),
        device: Device {
            kind: "pc".into(),
            os: "Linux".into(),
            browser: "Firefox".into(),
        },
        fingerprint: "fp-1".into(),
        remember_me: true,
        amr: vec!["pwd".into()],
        cookie_mode: true,
    }
}

/// Starts a session; returns it and its first refresh token string.
async fn start(
    store: &dyn Store,
    user_id: Uuid,
    at: OffsetDateTime,
    max: u32,
) -> (NewSession, String) {
    let s = session(user_id, at);
    let (text, token) = new_refresh_token(s.id, at, at + Duration::days(30));
    store
        .create_session(&s, &token, max, 0, &Aftermath::default())
        .await
        .unwrap();
    (s, text.to_string())
}

async fn rotate(
    store: &dyn Store,
    presented: &str,
    at: OffsetDateTime,
    grace: Duration,
) -> (RotateOutcome, String) {
    // An already-expired `next`: the store must give it the session's lifetime.
    let (text, next) = new_refresh_token(Uuid::nil(), at, at);
    let outcome = store
        .rotate_refresh_token(&hash_refresh_token(presented), &next, at, IDLE, grace)
        .await
        .unwrap();
    (outcome, text.to_string())
}

/// A session reads back with every field equal.
pub async fn sessions_round_trip(store: &dyn Store) {
    let uid = user(store).await;
    let (s, _) = start(store, uid, T0, 5).await;
    let got = store.session(s.id).await.unwrap().expect("stored");
    assert_eq!(got.id, s.id);
    assert_eq!(got.user_id, uid);
    assert_eq!((got.created_at, got.last_seen_at), (T0, T0));
    assert_eq!(got.idle_expires_at, s.idle_expires_at);
    assert_eq!(got.absolute_expires_at, s.absolute_expires_at);
    assert_eq!((got.ip, got.user_agent), (s.ip, s.user_agent));
    assert_eq!(
        (got.device, got.fingerprint, got.remember_me, got.amr),
        (s.device, s.fingerprint, true, s.amr)
    );
    assert_eq!(got.cookie_mode, Some(true), "the delivery mode is kept");
    assert!(got.revoked_at.is_none());
    assert_eq!(store.live_sessions(uid, T0).await.unwrap().len(), 1);
    assert!(store.session(Uuid::now_v7()).await.unwrap().is_none());
}

/// Beyond the limit, the oldest live sessions are revoked with their tokens.
pub async fn session_limit_evicts_the_oldest(store: &dyn Store) {
    let uid = user(store).await;
    let (first, first_token) = start(store, uid, T0, 2).await;
    let (second, _) = start(store, uid, T0 + Duration::seconds(1), 2).await;
    let (third, _) = start(store, uid, T0 + Duration::seconds(2), 2).await;
    let live: Vec<Uuid> = store
        .live_sessions(uid, T0 + Duration::seconds(3))
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        live,
        vec![third.id, second.id],
        "newest first, oldest evicted"
    );
    assert!(store
        .session(first.id)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
    let (outcome, _) = rotate(
        store,
        &first_token,
        T0 + Duration::seconds(4),
        Duration::ZERO,
    )
    .await;
    assert_eq!(
        outcome,
        RotateOutcome::Invalid,
        "an evicted session's token is dead"
    );
    // A lowered limit evicts every live session past it at the next sign-in
    // (answered newest first), and nothing already revoked.
    let fourth = session(uid, T0 + Duration::seconds(5));
    let (_, token) = new_refresh_token(fourth.id, fourth.created_at, T0 + Duration::days(30));
    let evicted = store
        .create_session(&fourth, &token, 1, 0, &Aftermath::default())
        .await
        .unwrap();
    assert_eq!(evicted, vec![third.id, second.id]);
    let live = store
        .live_sessions(uid, T0 + Duration::seconds(6))
        .await
        .unwrap();
    assert_eq!(
        live.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![fourth.id]
    );
}

/// A token rotates once; presenting it again revokes the family and session.
pub async fn refresh_rotates_once_and_reuse_revokes_the_family(store: &dyn Store) {
    let uid = user(store).await;
    let (s, t1) = start(store, uid, T0, 5).await;
    let later = T0 + Duration::hours(1);
    let (outcome, t2) = rotate(store, &t1, later, Duration::ZERO).await;
    let RotateOutcome::Rotated(rotated) = outcome else {
        panic!("{outcome:?}")
    };
    assert_eq!(rotated.id, s.id);
    assert_eq!(rotated.last_seen_at, later);
    assert_eq!(rotated.idle_expires_at, later + IDLE);
    assert_eq!(
        store.session(s.id).await.unwrap().unwrap().idle_expires_at,
        later + IDLE
    );

    let (reuse, _) = rotate(store, &t1, later + Duration::seconds(5), Duration::ZERO).await;
    assert_eq!(
        reuse,
        RotateOutcome::Reused {
            session_id: s.id,
            user_id: uid
        }
    );
    assert!(store
        .session(s.id)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
    let (after, _) = rotate(store, &t2, later + Duration::seconds(6), Duration::ZERO).await;
    assert_eq!(
        after,
        RotateOutcome::Invalid,
        "the whole family died with the reuse"
    );
    let (again, _) = rotate(store, &t1, later + Duration::seconds(7), Duration::ZERO).await;
    assert_eq!(again, RotateOutcome::Invalid, "reuse is reported once");
}

/// A re-presentation within the grace period fails without revoking anything.
pub async fn reuse_within_grace_is_answered_without_revocation(store: &dyn Store) {
    let uid = user(store).await;
    let (s, t1) = start(store, uid, T0, 5).await;
    let (first, t2) = rotate(store, &t1, T0 + Duration::seconds(1), Duration::seconds(10)).await;
    assert!(matches!(first, RotateOutcome::Rotated(_)));
    let (second, _) = rotate(store, &t1, T0 + Duration::seconds(5), Duration::seconds(10)).await;
    let RotateOutcome::Concurrent(session) = second else {
        panic!("within the grace: {second:?}")
    };
    assert_eq!(session.id, s.id);
    assert!(store
        .session(s.id)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_none());
    // The spent token still names its session within the grace, not after.
    let at = T0 + Duration::seconds(5);
    let grace = Duration::seconds(10);
    let named = store
        .refresh_token_session(&hash_refresh_token(&t1), at, grace)
        .await
        .unwrap();
    assert_eq!(named.map(|(s, _)| s.id), Some(s.id));
    let strict = store
        .refresh_token_session(&hash_refresh_token(&t1), at, Duration::ZERO)
        .await
        .unwrap();
    assert!(strict.is_none(), "spent: not usable without a grace");
    let late = T0 + Duration::seconds(12);
    assert!(store
        .refresh_token_session(&hash_refresh_token(&t1), late, grace)
        .await
        .unwrap()
        .is_none());
    let (third, _) = rotate(store, &t2, T0 + Duration::seconds(6), Duration::seconds(10)).await;
    assert!(matches!(third, RotateOutcome::Rotated(_)));
    // Once the family is revoked (reuse after the grace), no grace answer.
    let (reused, _) = rotate(
        store,
        &t1,
        T0 + Duration::seconds(20),
        Duration::seconds(10),
    )
    .await;
    assert!(matches!(reused, RotateOutcome::Reused { .. }), "{reused:?}");
    let (after, _) = rotate(
        store,
        &t2,
        T0 + Duration::seconds(21),
        Duration::seconds(30),
    )
    .await;
    assert_eq!(after, RotateOutcome::Invalid, "revoked family");
}

/// Fifty concurrent rotations of one token: exactly one succeeds.
pub async fn concurrent_rotations_admit_exactly_one(store: Arc<dyn Store>) {
    let uid = user(&*store).await;
    let (_, t1) = start(&*store, uid, T0, 5).await;
    let at = T0 + Duration::minutes(1);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let store = Arc::clone(&store);
        let t1 = t1.clone();
        tasks.push(tokio::spawn(async move {
            rotate(&*store, &t1, at, Duration::ZERO).await.0
        }));
    }
    let mut rotated = 0;
    for task in tasks {
        match task.await.unwrap() {
            RotateOutcome::Rotated(_) => rotated += 1,
            RotateOutcome::Invalid
            | RotateOutcome::Reused { .. }
            | RotateOutcome::Concurrent(_) => {}
        }
    }
    assert_eq!(rotated, 1);
}

/// Sign-ins that read the stamp before a password change, racing that change:
/// whichever commits first, none of their sessions is live afterwards (started
/// before the change: revoked by it; after: refused by the stamp).
pub async fn sign_ins_racing_a_password_change_never_outlive_it(store: Arc<dyn Store>) {
    let uid = user(&*store).await;
    let seen = store.user_by_id(uid).await.unwrap().unwrap().security_stamp;
    let at = T0 + Duration::minutes(1);
    let sign_in = |i: i64| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let s = session(uid, at + Duration::milliseconds(i));
            let (_, token) = new_refresh_token(s.id, s.created_at, at + Duration::days(1));
            store
                .create_session(&s, &token, 100, seen, &Aftermath::default())
                .await
        })
    };
    // Sign-ins before, around and after the change.
    let mut sign_ins: Vec<_> = (0..10).map(sign_in).collect();
    let change = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let revoke = Aftermath {
                revoke: Some(Revocation {
                    keep: None,
                    reason: RevokeReason::PasswordChanged,
                }),
                ..Aftermath::default()
            };
            store
                .change_password_hash(uid, "changed", at, 0, &revoke)
                .await
        })
    };
    sign_ins.extend((10..20).map(sign_in));
    change.await.unwrap().unwrap();
    sign_ins.extend((20..25).map(sign_in));
    for sign_in in sign_ins {
        match sign_in.await.unwrap() {
            Ok(_)
            | Err(StoreError::Conflict {
                constraint: SECURITY_CHANGED,
            }) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(
        store
            .live_sessions(uid, at + Duration::seconds(1))
            .await
            .unwrap()
            .is_empty(),
        "a session begun under the old password survived the change"
    );
}

/// Expired tokens and tokens of idle-expired sessions are refused.
pub async fn expired_tokens_and_sessions_are_refused(store: &dyn Store) {
    let uid = user(store).await;
    let (_, t1) = start(store, uid, T0, 5).await;
    let (outcome, _) = rotate(store, &t1, T0 + IDLE + Duration::seconds(1), Duration::ZERO).await;
    assert_eq!(outcome, RotateOutcome::Invalid, "idle-expired session");
    let (unknown, _) = rotate(store, "lk_rt_never-issued", T0, Duration::ZERO).await;
    assert_eq!(unknown, RotateOutcome::Invalid);
    assert!(store
        .live_sessions(uid, T0 + IDLE + Duration::seconds(1))
        .await
        .unwrap()
        .is_empty());
}

/// Users revoke only their own live sessions; bulk revocation can keep one.
pub async fn revocation_is_scoped_to_the_owner(store: &dyn Store) {
    let alice = user(store).await;
    let mallory = user(store).await;
    let (a1, a1_token) = start(store, alice, T0, 5).await;
    let (a2, _) = start(store, alice, T0 + Duration::seconds(1), 5).await;
    let (a3, _) = start(store, alice, T0 + Duration::seconds(2), 5).await;
    let now = T0 + Duration::minutes(1);
    assert!(!store
        .revoke_session(mallory, a1.id, RevokeReason::UserRevoked, now)
        .await
        .unwrap());
    assert!(store
        .revoke_session(alice, a1.id, RevokeReason::UserRevoked, now)
        .await
        .unwrap());
    assert!(
        !store
            .revoke_session(alice, a1.id, RevokeReason::UserRevoked, now)
            .await
            .unwrap(),
        "already revoked"
    );
    assert_eq!(
        rotate(store, &a1_token, now, Duration::ZERO).await.0,
        RotateOutcome::Invalid
    );
    assert_eq!(
        store
            .revoke_user_sessions(alice, Some(a3.id), RevokeReason::Logout, now)
            .await
            .unwrap(),
        1
    );
    let live: Vec<Uuid> = store
        .live_sessions(alice, now)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(live, vec![a3.id]);
    assert!(store
        .session(a2.id)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
}

/// Revoking more sessions than one statement takes (the store revokes them
/// in chunks of a few hundred) revokes every one of them with its tokens, and
/// counts each once.
pub async fn revoking_many_sessions_revokes_every_one(store: &dyn Store) {
    const MANY: u32 = 1_001;
    let user_id = user(store).await;
    let (kept, _) = start(store, user_id, T0, MANY + 1).await;
    let mut tokens = Vec::new();
    for i in 1..=MANY {
        let at = T0 + Duration::milliseconds(i64::from(i));
        tokens.push(start(store, user_id, at, MANY + 1).await.1);
    }
    let now = T0 + Duration::minutes(1);
    let revoked = store
        .revoke_user_sessions(user_id, Some(kept.id), RevokeReason::Logout, now)
        .await
        .unwrap();
    assert_eq!(revoked, u64::from(MANY));
    let live: Vec<Uuid> = store
        .live_sessions(user_id, now)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(live, vec![kept.id]);
    // The first, a chunk boundary and the last: their tokens died with them.
    for token in [
        &tokens[0],
        &tokens[499],
        &tokens[500],
        &tokens[tokens.len() - 1],
    ] {
        assert_eq!(
            rotate(store, token, now, Duration::ZERO).await.0,
            RotateOutcome::Invalid
        );
    }
}

/// The denylist answers for denied ids only; denying twice is fine.
pub async fn access_token_denylist(store: &dyn Store) {
    let jti = Uuid::now_v7();
    assert!(!store.is_access_token_denied(jti).await.unwrap());
    store
        .deny_access_token(jti, T0 + Duration::minutes(15))
        .await
        .unwrap();
    store
        .deny_access_token(jti, T0 + Duration::minutes(15))
        .await
        .unwrap();
    assert!(store.is_access_token_denied(jti).await.unwrap());
    assert!(!store.is_access_token_denied(Uuid::now_v7()).await.unwrap());
}

fn event(user_id: Uuid, kind: EventKind, at: OffsetDateTime) -> SecurityEvent {
    SecurityEvent {
        id: Uuid::now_v7(),
        user_id: Some(user_id),
        kind,
        created_at: at,
        session_id: None,
        ip: Some("198.51.100.7".into()),
        user_agent: None,
        actor_id: None,
        details: None,
    }
}

/// A change writes its aftermath (other sessions revoked with their tokens,
/// the event, the mail, new recovery codes) in its own call; a change that does
/// not happen writes none of it.
pub async fn changes_write_their_aftermath(store: &dyn Store) {
    let uid = user(store).await;
    let (kept, _) = start(store, uid, T0, 5).await;
    let (other, other_token) = start(store, uid, T0 + Duration::seconds(1), 5).await;
    let at = T0 + Duration::minutes(1);
    let changed = event(uid, EventKind::PasswordChanged, at);
    let mail =
        crate::conformance::queued("ada@example.com", "Password changed", "It was.".into(), at);
    let codes = [[7u8; 32], [8; 32], [9; 32]];
    let queued = store.pending_mail().await.unwrap();
    let after = Aftermath {
        revoke: Some(Revocation {
            keep: Some(kept.id),
            reason: RevokeReason::PasswordChanged,
        }),
        event: Some(&changed),
        mail: Some(&mail),
        recovery_codes: Some(&codes),
    };
    store
        .change_password_hash(uid, "new-hash", at, 0, &after)
        .await
        .unwrap();
    let live: Vec<Uuid> = store
        .live_sessions(uid, at)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(live, vec![kept.id], "every other session revoked");
    assert!(store
        .session(other.id)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());
    let (outcome, _) = rotate(store, &other_token, at, Duration::ZERO).await;
    assert_eq!(outcome, RotateOutcome::Invalid, "with its refresh tokens");
    assert_eq!(store.user_events(uid, 10).await.unwrap(), vec![changed]);
    assert_eq!(store.pending_mail().await.unwrap(), queued + 1);
    assert_eq!(store.mfa_summary(uid).await.unwrap().recovery_codes_left, 3);

    let later = at + Duration::minutes(1);
    let removed = event(uid, EventKind::MfaDisabled, later);
    let none: [[u8; 32]; 0] = [];
    let nothing_there = Aftermath {
        revoke: Some(Revocation {
            keep: None,
            reason: RevokeReason::MfaChanged,
        }),
        event: Some(&removed),
        mail: Some(&mail),
        recovery_codes: Some(&none),
    };
    assert!(!store
        .delete_passkey(uid, Uuid::now_v7(), later, &nothing_there)
        .await
        .unwrap());
    assert_eq!(store.live_sessions(uid, later).await.unwrap().len(), 1);
    assert_eq!(store.user_events(uid, 10).await.unwrap().len(), 1);
    assert_eq!(store.pending_mail().await.unwrap(), queued + 1);
    assert_eq!(store.mfa_summary(uid).await.unwrap().recovery_codes_left, 3);
}

/// A change that revokes sessions moves the user's security stamp on; a
/// sign-in that read the old stamp starts no session and writes nothing of its
/// aftermath; one that read the new stamp starts, without moving it.
pub async fn a_sign_in_across_a_password_change_starts_nothing(store: &dyn Store) {
    let uid = user(store).await;
    assert_eq!(
        store.user_by_id(uid).await.unwrap().unwrap().security_stamp,
        0
    );
    let revoke = Aftermath {
        revoke: Some(Revocation {
            keep: None,
            reason: RevokeReason::PasswordChanged,
        }),
        ..Aftermath::default()
    };
    store
        .change_password_hash(uid, "new-hash", T0, 0, &revoke)
        .await
        .unwrap();
    let stamp = store.user_by_id(uid).await.unwrap().unwrap().security_stamp;
    assert_eq!(stamp, 1);

    let s = session(uid, T0);
    let (_, token) = new_refresh_token(s.id, T0, T0 + Duration::days(30));
    let signed_in = event(uid, EventKind::LoginSucceeded, T0);
    let after = Aftermath {
        event: Some(&signed_in),
        ..Aftermath::default()
    };
    let err = store
        .create_session(&s, &token, 5, 0, &after)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                constraint: SECURITY_CHANGED
            }
        ),
        "{err:?}"
    );
    assert!(store.session(s.id).await.unwrap().is_none());
    assert!(store.user_events(uid, 10).await.unwrap().is_empty());
    store
        .create_session(&s, &token, 5, stamp, &after)
        .await
        .unwrap();
    assert!(store.session(s.id).await.unwrap().is_some());
    assert_eq!(
        store.user_by_id(uid).await.unwrap().unwrap().security_stamp,
        stamp,
        "an aftermath without revocation leaves the stamp"
    );
}

/// Events read back newest first, per user.
pub async fn security_events_round_trip(store: &dyn Store) {
    let uid = user(store).await;
    let other = user(store).await;
    for (i, kind) in [
        EventKind::LoginSucceeded,
        EventKind::RefreshReuseDetected,
        EventKind::LoggedOut,
    ]
    .into_iter()
    .enumerate()
    {
        let event = SecurityEvent {
            id: Uuid::now_v7(),
            user_id: Some(uid),
            kind,
            created_at: T0 + Duration::seconds(i64::try_from(i).unwrap()),
            session_id: Some(Uuid::now_v7()),
            ip: Some("198.51.100.1".into()),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".into()),
            actor_id: None,
            details: None,
        };
        store.record_event(&event).await.unwrap();
    }
    let events = store.user_events(uid, 10).await.unwrap();
    let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            EventKind::LoggedOut,
            EventKind::RefreshReuseDetected,
            EventKind::LoginSucceeded
        ]
    );
    assert_eq!(store.user_events(uid, 2).await.unwrap().len(), 2);
    assert!(store.user_events(other, 10).await.unwrap().is_empty());
}

/// Cleanup removes dead sessions (and their tokens), expired tokens and
/// denylist entries, in batches, and nothing that is still usable.
pub async fn cleanup_removes_only_expired_data(store: &dyn Store) {
    use latchkey_core::maintenance::Cleaner;
    let uid = user(store).await;
    let (live, live_token) = start(store, uid, T0, 100).await;
    let (dead, _) = start(store, uid, T0, 100).await;
    let now = T0 + Duration::hours(1);
    store
        .revoke_session(uid, dead.id, RevokeReason::Logout, now)
        .await
        .unwrap();
    let (expired_idle, _) = start(store, uid, T0 - Duration::days(8), 100).await;
    store.deny_access_token(Uuid::now_v7(), T0).await.unwrap();
    let kept_jti = Uuid::now_v7();
    store
        .deny_access_token(kept_jti, now + Duration::minutes(10))
        .await
        .unwrap();

    let report = Cleaner::default()
        .run(store, now)
        .await
        .expect("not running")
        .unwrap();
    assert_eq!(report.sessions, 2, "{report:?}");
    assert_eq!(report.denied_access_tokens, 1);
    assert!(store.session(dead.id).await.unwrap().is_none());
    assert!(store.session(expired_idle.id).await.unwrap().is_none());
    assert!(store.session(live.id).await.unwrap().is_some());
    assert!(store.is_access_token_denied(kept_jti).await.unwrap());
    let (outcome, _) = rotate(store, &live_token, now, Duration::ZERO).await;
    assert!(
        matches!(outcome, RotateOutcome::Rotated(_)),
        "the live session still refreshes"
    );
    let again = Cleaner::default().run(store, now).await.unwrap().unwrap();
    assert_eq!(
        again.sessions + again.refresh_tokens + again.denied_access_tokens,
        0
    );

    // More than one batch of expired rows.
    let many = u64::from(latchkey_core::maintenance::BATCH) + 7;
    for _ in 0..many {
        store.deny_access_token(Uuid::now_v7(), T0).await.unwrap();
    }
    assert_eq!(
        Cleaner::default()
            .run(store, now)
            .await
            .unwrap()
            .unwrap()
            .denied_access_tokens,
        many
    );
}

/// A device is known by the fingerprint of any stored session of the user
/// (revoked ones too); a user without sessions is at their first sign-in;
/// another user's sessions say nothing.
pub async fn device_familiarity_comes_from_stored_sessions(store: &dyn Store) {
    use latchkey_core::ports::DeviceSeen;
    let uid = user(store).await;
    let other = user(store).await;
    assert_eq!(
        store.device_seen(uid, "fp-1").await.unwrap(),
        DeviceSeen::FirstSignIn
    );
    start(store, other, T0, 5).await;
    assert_eq!(
        store.device_seen(uid, "fp-1").await.unwrap(),
        DeviceSeen::FirstSignIn
    );
    let (s, _) = start(store, uid, T0, 5).await;
    assert_eq!(
        store.device_seen(uid, "fp-1").await.unwrap(),
        DeviceSeen::Known
    );
    assert_eq!(
        store.device_seen(uid, "fp-2").await.unwrap(),
        DeviceSeen::New
    );
    store
        .revoke_session(uid, s.id, RevokeReason::UserRevoked, T0)
        .await
        .unwrap();
    assert_eq!(
        store.device_seen(uid, "fp-1").await.unwrap(),
        DeviceSeen::Known
    );
}
