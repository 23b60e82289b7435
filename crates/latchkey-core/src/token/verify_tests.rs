//! Verification rules that do not depend on the algorithm: time claims, issuer
//! and audience, cross-algorithm tokens and garbage input.

use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::hostile_tests::signed;
use super::tests::{claims, key, ring_of, settings, ALL, NOW};
use super::*;

#[test]
fn time_claims_use_the_injected_clock_with_bounded_leeway() {
    let ring = ring_of(&key(Algorithm::EdDSA));
    let token = ring.sign(&claims()).unwrap();
    let s = settings();
    let exp = NOW + Duration::minutes(15);
    let at = |t: OffsetDateTime| ring.verify(&token, &s, t);
    assert!(at(exp + Duration::seconds(30)).is_ok(), "within leeway");
    assert!(
        at(exp + Duration::seconds(60)).is_ok(),
        "at the leeway edge"
    );
    assert_eq!(at(exp + Duration::seconds(61)), Err(TokenError::Expired));
    assert_eq!(at(exp + Duration::days(365)), Err(TokenError::Expired));
    assert!(at(NOW - Duration::seconds(60)).is_ok());
    assert_eq!(
        at(NOW - Duration::seconds(61)),
        Err(TokenError::NotYetValid)
    );
    let generous = TokenSettings {
        leeway: Duration::hours(1),
        ..s.clone()
    };
    assert_eq!(
        ring.verify(&token, &generous, exp + Duration::minutes(5)),
        Err(TokenError::Expired),
        "leeway is capped at 60 s"
    );
    let strict = TokenSettings {
        leeway: Duration::seconds(-30),
        ..s
    };
    assert_eq!(
        ring.verify(&token, &strict, exp + Duration::seconds(1)),
        Err(TokenError::Expired)
    );
}

#[test]
fn wrong_issuer_or_audience_is_refused() {
    let ring = ring_of(&key(Algorithm::EdDSA));
    let token = ring.sign(&claims()).unwrap();
    let other_iss = TokenSettings {
        issuer: "https://evil.example.com".into(),
        ..settings()
    };
    assert_eq!(
        ring.verify(&token, &other_iss, NOW),
        Err(TokenError::WrongIssuer)
    );
    let other_aud = TokenSettings {
        audience: "other".into(),
        ..settings()
    };
    assert_eq!(
        ring.verify(&token, &other_aud, NOW),
        Err(TokenError::WrongAudience)
    );
}

#[test]
fn tokens_from_our_keys_of_another_algorithm_are_refused() {
    for alg in ALL {
        let ring = ring_of(&key(alg));
        for other in ALL.into_iter().filter(|o| *o != alg) {
            let token = ring_of(&key(other)).sign(&claims()).unwrap();
            assert_eq!(
                ring.verify(&token, &settings(), NOW),
                Err(TokenError::WrongAlgorithm)
            );
        }
        // Even with the kid of a key in the ring.
        let other = if alg == Algorithm::EdDSA {
            Algorithm::ES256
        } else {
            Algorithm::EdDSA
        };
        let h = json!({"alg": other.name(), "typ": "at+jwt", "kid": ring.current_kid()});
        let body = serde_json::to_value(claims()).unwrap();
        let token = signed(&h, &body, &key(other));
        assert_eq!(
            ring.verify(&token, &settings(), NOW),
            Err(TokenError::WrongAlgorithm)
        );
    }
}

#[test]
fn garbage_is_an_error_never_a_panic() {
    let ring = ring_of(&key(Algorithm::EdDSA));
    let dots = ".".repeat(100_000);
    let long = "a".repeat(100_000);
    let valid = ring.sign(&claims()).unwrap();
    let garbage = [
        "",
        ".",
        "..",
        "...",
        "a",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "eyJ.eyJ.sig",
        "e30.e30.",
        "bnVsbA.e30.",
        "W10.e30.",
        "IiI.e30.",
        "\u{0}.\u{0}.\u{0}",
        "é.é.é",
        &dots,
        &long,
        &valid[..valid.len() / 2],
    ];
    for token in garbage {
        assert!(ring.verify(token, &settings(), NOW).is_err(), "{token:.20}");
    }
    assert_eq!(
        ring.verify(&dots, &settings(), NOW),
        Err(TokenError::Malformed)
    );
    assert_eq!(
        ring.verify("a.b.c.d", &settings(), NOW),
        Err(TokenError::Malformed)
    );
    assert_eq!(
        ring.verify(&format!("{valid}.x"), &settings(), NOW),
        Err(TokenError::Malformed)
    );
    assert_eq!(
        ring.verify(&format!(" {valid}"), &settings(), NOW),
        Err(TokenError::Malformed)
    );
    assert!(
        ring.verify(&valid, &settings(), NOW).is_ok(),
        "control case"
    );
}

#[test]
fn remembered_verifications_still_check_time_issuer_and_audience() {
    let keys = ActiveKeys::new(ring_of(&key(Algorithm::EdDSA)));
    let token = keys.ring().sign(&claims()).unwrap();
    let s = settings();
    let exp = NOW + Duration::minutes(15);
    assert!(keys.verify(&token, &s, NOW).is_ok(), "first use: verified");
    assert!(
        keys.verify(&token, &s, NOW).is_ok(),
        "second use: remembered"
    );
    assert_eq!(
        keys.verify(&token, &s, exp + Duration::seconds(61)),
        Err(TokenError::Expired)
    );
    assert_eq!(
        keys.verify(&token, &s, NOW - Duration::seconds(61)),
        Err(TokenError::NotYetValid)
    );
    let other_aud = TokenSettings {
        audience: "another-api".into(),
        ..s.clone()
    };
    assert_eq!(
        keys.verify(&token, &other_aud, NOW),
        Err(TokenError::WrongAudience)
    );
    // Other bytes never hit the memory: a tampered signature is checked.
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert!(keys.verify(&tampered, &s, NOW).is_err());
}

#[test]
fn replacing_the_ring_forgets_remembered_verifications() {
    let keys = ActiveKeys::new(ring_of(&key(Algorithm::EdDSA)));
    let token = keys.ring().sign(&claims()).unwrap();
    assert!(keys.verify(&token, &settings(), NOW).is_ok());
    // The key that signed it is gone (e.g. removed after a compromise).
    keys.replace(ring_of(&key(Algorithm::EdDSA)));
    assert_eq!(
        keys.verify(&token, &settings(), NOW),
        Err(TokenError::UnknownKey)
    );
}
