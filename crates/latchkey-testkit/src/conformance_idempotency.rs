//! Conformance cases for Idempotency-Key records: the primary key decides
//! which request runs, abandoned and expired records are taken over, a
//! record goes with its user and with the cleanup.

// A test suite living in a library: failing loudly is its job.
#![allow(
    clippy::missing_panics_doc,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::sync::Arc;

use latchkey_core::account::{normalize_email, NewUser};
use latchkey_core::ports::{ClaimOutcome, Expired, IdempotencyRecord, NewIdempotencyClaim, Store};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const T0: OffsetDateTime = datetime!(2026-12-04 12:00:00 UTC);

fn claim(record: u8, hash: u8, run: u8, now: OffsetDateTime) -> NewIdempotencyClaim {
    NewIdempotencyClaim {
        record_key: [record; 32],
        request_hash: [hash; 32],
        claim: [run; 16],
        user_id: None,
        now,
        abandoned_before: now - Duration::seconds(20),
        expired_before: now - Duration::hours(24),
    }
}

async fn user(store: &dyn Store, email: &str) -> Uuid {
    let new = NewUser {
        id: Uuid::now_v7(),
        email: email.to_owned(),
        email_normalized: normalize_email(email),
        name: None,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: T0,
    };
    store.create_user(&new).await.unwrap().id
}

/// The first claim runs; later ones see it running, then its answer; only
/// the run holding the key completes or releases it.
pub async fn idempotency_claims_are_held_by_one_run(store: &dyn Store) {
    let first = claim(1, 9, 1, T0);
    assert_eq!(
        store.claim_idempotency(&first).await.unwrap(),
        ClaimOutcome::Claimed
    );
    let again = claim(1, 8, 2, T0 + Duration::seconds(1));
    let running = IdempotencyRecord {
        request_hash: [9; 32],
        response: None,
    };
    assert_eq!(
        store.claim_idempotency(&again).await.unwrap(),
        ClaimOutcome::Taken(running)
    );
    assert!(!store
        .complete_idempotency(&[1; 32], &[2; 16], b"not mine", T0)
        .await
        .unwrap());
    store.release_idempotency(&[1; 32], &[2; 16]).await.unwrap();
    assert!(store
        .complete_idempotency(&[1; 32], &[1; 16], b"sealed answer", T0)
        .await
        .unwrap());
    assert!(!store
        .complete_idempotency(&[1; 32], &[1; 16], b"twice", T0)
        .await
        .unwrap());
    // A finished record is not released, not even by its own run.
    store.release_idempotency(&[1; 32], &[1; 16]).await.unwrap();
    assert_eq!(
        store.claim_idempotency(&again).await.unwrap(),
        ClaimOutcome::Taken(IdempotencyRecord {
            request_hash: [9; 32],
            response: Some(b"sealed answer".to_vec()),
        })
    );
    // Another key is another record.
    assert_eq!(
        store.claim_idempotency(&claim(2, 9, 3, T0)).await.unwrap(),
        ClaimOutcome::Claimed
    );
    // A released record is free again.
    store.release_idempotency(&[2; 32], &[3; 16]).await.unwrap();
    assert_eq!(
        store.claim_idempotency(&claim(2, 7, 4, T0)).await.unwrap(),
        ClaimOutcome::Claimed
    );
}

/// A run unfinished past `abandoned_before` is taken over (and the old run
/// can no longer complete); a finished record past `expired_before` is
/// replaced; a finished record within retention is never taken over.
pub async fn idempotency_abandoned_and_expired_records_are_taken_over(store: &dyn Store) {
    store.claim_idempotency(&claim(1, 1, 1, T0)).await.unwrap();
    let later = T0 + Duration::seconds(21);
    assert_eq!(
        store
            .claim_idempotency(&claim(1, 2, 2, later))
            .await
            .unwrap(),
        ClaimOutcome::Claimed
    );
    assert!(!store
        .complete_idempotency(&[1; 32], &[1; 16], b"stale", later)
        .await
        .unwrap());
    assert!(store
        .complete_idempotency(&[1; 32], &[2; 16], b"fresh", later)
        .await
        .unwrap());
    let day = later + Duration::hours(23);
    assert!(matches!(
        store.claim_idempotency(&claim(1, 2, 3, day)).await.unwrap(),
        ClaimOutcome::Taken(IdempotencyRecord {
            response: Some(_),
            ..
        })
    ));
    let past = later + Duration::hours(24);
    assert_eq!(
        store
            .claim_idempotency(&claim(1, 5, 4, past))
            .await
            .unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store
            .claim_idempotency(&claim(1, 5, 5, past))
            .await
            .unwrap(),
        ClaimOutcome::Taken(IdempotencyRecord {
            request_hash: [5; 32],
            response: None,
        })
    );
}

/// A user's records are deleted with the user; the cleanup deletes records
/// past retention and keeps younger ones.
pub async fn idempotency_records_go_with_their_user_and_their_day(store: &dyn Store) {
    let ada = user(store, "ada@example.com").await;
    let mut mine = claim(1, 1, 1, T0);
    mine.user_id = Some(ada);
    store.claim_idempotency(&mine).await.unwrap();
    store.delete_user(ada, None).await.unwrap();
    assert_eq!(
        store.claim_idempotency(&claim(1, 2, 2, T0)).await.unwrap(),
        ClaimOutcome::Claimed
    );
    store
        .claim_idempotency(&claim(3, 1, 1, T0 + Duration::hours(2)))
        .await
        .unwrap();
    let now = T0 + Duration::hours(25);
    assert_eq!(
        store
            .delete_expired(Expired::IdempotencyKeys, now, 100)
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        store
            .claim_idempotency(&claim(3, 1, 9, T0 + Duration::hours(2)))
            .await
            .unwrap(),
        ClaimOutcome::Taken(_)
    ));
}

/// Of many concurrent claims of one key, exactly one runs.
pub async fn concurrent_idempotency_claims_admit_exactly_one(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for run in 0..16_u8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .claim_idempotency(&claim(7, 7, run, T0))
                .await
                .unwrap()
        }));
    }
    let mut claimed = 0;
    for task in tasks {
        match task.await.unwrap() {
            ClaimOutcome::Claimed => claimed += 1,
            ClaimOutcome::Taken(record) => assert_eq!(record.response, None),
            ClaimOutcome::Released => panic!("nothing released the key"),
        }
    }
    assert_eq!(claimed, 1);
}
