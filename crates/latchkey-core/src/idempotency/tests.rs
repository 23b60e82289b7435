use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::*;
use crate::clock::ManualClock;
use crate::ports::IdempotencyRecord;

/// The store contract in memory (the SQL one is checked by the conformance
/// suite on both engines).
#[derive(Default)]
struct MemoryRecords(Mutex<HashMap<[u8; 32], Row>>);

#[derive(Clone)]
struct Row {
    hash: [u8; 32],
    claim: [u8; 16],
    response: Option<Vec<u8>>,
    created_at: OffsetDateTime,
}

#[async_trait]
impl IdempotencyStore for MemoryRecords {
    async fn claim_idempotency(&self, c: &NewIdempotencyClaim) -> Result<ClaimOutcome, StoreError> {
        let mut rows = self.0.lock().unwrap();
        let replace = rows.get(&c.record_key).is_none_or(|r| {
            (r.response.is_none() && r.created_at <= c.abandoned_before)
                || r.created_at <= c.expired_before
        });
        if replace {
            rows.insert(
                c.record_key,
                Row {
                    hash: c.request_hash,
                    claim: c.claim,
                    response: None,
                    created_at: c.now,
                },
            );
            return Ok(ClaimOutcome::Claimed);
        }
        let r = &rows[&c.record_key];
        Ok(ClaimOutcome::Taken(IdempotencyRecord {
            request_hash: r.hash,
            response: r.response.clone(),
        }))
    }

    async fn complete_idempotency(
        &self,
        record_key: &[u8; 32],
        claim: &[u8; 16],
        response: &[u8],
        _now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut rows = self.0.lock().unwrap();
        match rows.get_mut(record_key) {
            Some(r) if &r.claim == claim && r.response.is_none() => {
                r.response = Some(response.to_vec());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_idempotency(
        &self,
        record_key: &[u8; 32],
        claim: &[u8; 16],
    ) -> Result<(), StoreError> {
        let mut rows = self.0.lock().unwrap();
        if rows
            .get(record_key)
            .is_some_and(|r| &r.claim == claim && r.response.is_none())
        {
            rows.remove(record_key);
        }
        Ok(())
    }
}

fn service() -> (Idempotency, Arc<MemoryRecords>, Arc<ManualClock>) {
    let records = Arc::new(MemoryRecords::default());
    let clock = Arc::new(ManualClock::new(
        time::macros::datetime!(2026-12-04 12:00 UTC),
    ));
    let service = Idempotency::new(
        records.clone(),
        Keyring::new(SEAL_PURPOSE, &[7; 32], &[]),
        b"mac key",
        clock.clone(),
        Duration::seconds(30),
    );
    (service, records, clock)
}

fn key(text: &str) -> IdempotencyKey {
    IdempotencyKey::parse(text.as_bytes()).unwrap()
}

fn request<'a>(key: &'a IdempotencyKey, body: &'a [u8]) -> KeyedRequest<'a> {
    KeyedRequest {
        owner: Owner::User(Uuid::nil()),
        method: "PATCH",
        target: "/v1/me",
        key,
        body,
    }
}

fn answer(status: u16, body: &str) -> KeptResponse {
    KeptResponse {
        status,
        content_type: Some("application/json".into()),
        location: None,
        body: body.into(),
    }
}

async fn run(service: &Idempotency, request: &KeyedRequest<'_>) -> Claim {
    match service.begin(request).await.unwrap() {
        Begin::Run(claim) => claim,
        other => panic!("expected to run, got {other:?}"),
    }
}

#[test]
fn keys_are_one_to_255_visible_ascii_characters() {
    assert!(IdempotencyKey::parse(b"a").is_ok());
    assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
    assert!(IdempotencyKey::parse(b"!~0123-abc_XYZ:./").is_ok());
    for bad in [
        &b""[..],
        &[b'k'; 256][..],
        b"with space",
        b"tab\there",
        "clé".as_bytes(),
        b"nul\0",
        b"line\nfeed",
        b"\x7f",
    ] {
        assert_eq!(IdempotencyKey::parse(bad), Err(MalformedKey), "{bad:?}");
    }
}

#[test]
fn only_answers_of_requests_that_ran_are_kept() {
    for kept in [200, 201, 202, 204, 400, 404, 409, 410, 422, 423] {
        assert!(keeps(kept), "{kept}");
    }
    for released in [401, 403, 408, 429, 500, 502, 503, 504, 100, 199] {
        assert!(!keeps(released), "{released}");
    }
}

#[tokio::test]
async fn a_repeat_gets_the_kept_answer_and_another_body_a_conflict() {
    let (service, _, _) = service();
    let k = key("order-1");
    let claim = run(&service, &request(&k, b"{\"name\":\"Ada\"}")).await;
    assert!(matches!(
        service
            .begin(&request(&k, b"{\"name\":\"Ada\"}"))
            .await
            .unwrap(),
        Begin::Conflict(Conflict::InFlight)
    ));
    service
        .finish(claim, &answer(200, "{\"id\":1}"))
        .await
        .unwrap();
    match service
        .begin(&request(&k, b"{\"name\":\"Ada\"}"))
        .await
        .unwrap()
    {
        Begin::Replay(kept) => assert_eq!(kept, answer(200, "{\"id\":1}")),
        other => panic!("expected a replay, got {other:?}"),
    }
    assert!(matches!(
        service
            .begin(&request(&k, b"{\"name\":\"Eve\"}"))
            .await
            .unwrap(),
        Begin::Conflict(Conflict::OtherBody)
    ));
}

#[tokio::test]
async fn keys_of_other_principals_methods_or_targets_never_meet() {
    let (service, _, _) = service();
    let k = key("same");
    let first = request(&k, b"{}");
    let claim = run(&service, &first).await;
    service.finish(claim, &answer(200, "{}")).await.unwrap();
    let others = [
        KeyedRequest {
            owner: Owner::User(Uuid::from_u128(1)),
            ..first
        },
        KeyedRequest {
            owner: Owner::Client("192.0.2.1".parse().unwrap()),
            ..first
        },
        KeyedRequest {
            method: "POST",
            ..first
        },
        KeyedRequest {
            target: "/v1/me?x=1",
            ..first
        },
    ];
    for other in &others {
        let claim = run(&service, other).await;
        service.release(claim).await.unwrap();
    }
}

#[tokio::test]
async fn refusals_and_server_errors_release_the_key() {
    let (service, _, _) = service();
    let k = key("retry-me");
    for status in [401, 403, 429, 500, 503] {
        let claim = run(&service, &request(&k, b"{}")).await;
        service.finish(claim, &answer(status, "{}")).await.unwrap();
    }
    let claim = run(&service, &request(&k, b"{}")).await;
    let oversized = "x".repeat(MAX_KEPT_BODY + 1);
    service
        .finish(claim, &answer(200, &oversized))
        .await
        .unwrap();
    let _still_free = run(&service, &request(&k, b"{}")).await;
}

#[tokio::test]
async fn an_abandoned_run_is_taken_over_and_cannot_complete_afterwards() {
    let (service, _, clock) = service();
    let k = key("crashed");
    let stale = run(&service, &request(&k, b"{}")).await;
    clock.advance(Duration::seconds(31));
    let fresh = run(&service, &request(&k, b"{}")).await;
    service
        .finish(stale, &answer(200, "\"stale\""))
        .await
        .unwrap();
    service
        .finish(fresh, &answer(200, "\"fresh\""))
        .await
        .unwrap();
    match service.begin(&request(&k, b"{}")).await.unwrap() {
        Begin::Replay(kept) => assert_eq!(kept.body, "\"fresh\""),
        other => panic!("expected a replay, got {other:?}"),
    }
}

#[tokio::test]
async fn a_kept_answer_expires_after_the_retention() {
    let (service, _, clock) = service();
    let k = key("day-old");
    let claim = run(&service, &request(&k, b"{}")).await;
    service.finish(claim, &answer(201, "{}")).await.unwrap();
    clock.advance(RETENTION - Duration::seconds(1));
    assert!(matches!(
        service.begin(&request(&k, b"{}")).await.unwrap(),
        Begin::Replay(_)
    ));
    clock.advance(Duration::seconds(1));
    let _runs_again = run(&service, &request(&k, b"{}")).await;
}

#[tokio::test]
async fn kept_answers_are_sealed_and_bound_to_their_record() {
    let (service, records, _) = service();
    let (a, b) = (key("a"), key("b"));
    let claim = run(&service, &request(&a, b"{}")).await;
    service
        .finish(claim, &answer(200, "{\"email\":\"ada@example.com\"}"))
        .await
        .unwrap();
    let claim = run(&service, &request(&b, b"{}")).await;
    service.finish(claim, &answer(200, "{}")).await.unwrap();
    {
        let mut rows = records.0.lock().unwrap();
        let sealed: Vec<Vec<u8>> = rows.values().map(|r| r.response.clone().unwrap()).collect();
        assert!(sealed.iter().all(|s| !s.windows(5).any(|w| w == b"ada@e")));
        // Swap the two answers: neither opens under the other's record.
        let keys: Vec<[u8; 32]> = rows.keys().copied().collect();
        rows.get_mut(&keys[0]).unwrap().response = Some(sealed[1].clone());
        rows.get_mut(&keys[1]).unwrap().response = Some(sealed[0].clone());
    }
    for k in [&a, &b] {
        assert!(matches!(
            service.begin(&request(k, b"{}")).await,
            Err(IdempotencyError::Seal(SealError::Corrupt))
        ));
    }
}
