//! Known answers and hostile tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::json;
use time::macros::datetime;

use serde_json::Value;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::access::{new_claims, AccessClaims, KeyRing, TokenSettings};
use super::keys::{thumbprint, Algorithm, SigningKey};
use super::TokenError;

const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

fn settings() -> TokenSettings {
    TokenSettings {
        issuer: "https://auth.example.com".into(),
        audience: "latchkey".into(),
        ttl: Duration::minutes(15),
        leeway: Duration::seconds(60),
    }
}

fn claims() -> AccessClaims {
    new_claims(
        &settings(),
        NOW,
        Uuid::now_v7(),
        Uuid::now_v7(),
        NOW,
        vec!["pwd".into()],
        vec![],
    )
}

fn ring(alg: Algorithm) -> KeyRing {
    KeyRing::new(SigningKey::generate(alg).unwrap(), vec![]).unwrap()
}

fn forge(header: &Value, claims: &Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string()),
        B64.encode(sig)
    )
}

#[test]
fn rfc7638_known_answer() {
    let jwk = json!({
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29"
    });
    assert_eq!(
        thumbprint(&jwk).unwrap(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[test]
fn every_algorithm_round_trips_and_publishes_its_key() {
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let key = SigningKey::generate(alg).unwrap();
        assert_eq!(key.kid(), thumbprint(key.public_jwk()).unwrap());
        let reloaded = SigningKey::from_pkcs8_der(alg, key.pkcs8_der()).unwrap();
        assert_eq!(reloaded.kid(), key.kid());
        let ring = KeyRing::new(key, vec![]).unwrap();
        let c = claims();
        let token = ring.sign(&c).unwrap();
        assert_eq!(ring.verify(&token, &settings(), NOW).unwrap(), c, "{alg:?}");
        let jwks = ring.jwks();
        let jwk = &jwks["keys"][0];
        assert_eq!(jwk["kid"], ring.current_kid());
        assert_eq!(jwk["alg"], alg.name());
        assert!(jwk.get("d").is_none() && jwk.get("p").is_none());
        assert!(!format!("{ring:?}").contains("der"));
    }
}

#[test]
fn time_claims_use_the_injected_clock_with_bounded_leeway() {
    let ring = ring(Algorithm::EdDSA);
    let c = claims();
    let token = ring.sign(&c).unwrap();
    let s = settings();
    assert!(ring
        .verify(
            &token,
            &s,
            NOW + Duration::minutes(15) + Duration::seconds(30)
        )
        .is_ok());
    assert_eq!(
        ring.verify(
            &token,
            &s,
            NOW + Duration::minutes(16) + Duration::seconds(1)
        ),
        Err(TokenError::Expired)
    );
    assert!(ring.verify(&token, &s, NOW - Duration::seconds(59)).is_ok());
    assert_eq!(
        ring.verify(&token, &s, NOW - Duration::seconds(61)),
        Err(TokenError::NotYetValid)
    );
    let generous = TokenSettings {
        leeway: Duration::hours(1),
        ..s
    };
    assert_eq!(
        ring.verify(&token, &generous, NOW + Duration::minutes(20)),
        Err(TokenError::Expired),
        "leeway is capped at 60 s"
    );
}

#[test]
fn wrong_issuer_or_audience_is_refused() {
    let ring = ring(Algorithm::EdDSA);
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
fn hostile_tokens_are_refused() {
    let ring = ring(Algorithm::EdDSA);
    let token = ring.sign(&claims()).unwrap();
    let kid = ring.current_kid().to_owned();
    let body = serde_json::to_value(claims()).unwrap();
    let sig = B64.decode(token.rsplit('.').next().unwrap()).unwrap();
    let s = settings();

    let none = forge(
        &json!({"alg": "none", "typ": "at+jwt", "kid": kid}),
        &body,
        b"",
    );
    assert!(ring.verify(&none, &s, NOW).is_err());
    let none_dot = format!(
        "{}.{}.",
        B64.encode(json!({"alg":"none","typ":"at+jwt","kid":kid}).to_string()),
        B64.encode(body.to_string())
    );
    assert!(ring.verify(&none_dot, &s, NOW).is_err());

    // HS256 keyed with our public key.
    let public = ring.jwks()["keys"][0]["x"].as_str().unwrap().to_owned();
    let hs_header = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid});
    let hs = jsonwebtoken::encode(
        &serde_json::from_value::<jsonwebtoken::Header>(hs_header).unwrap(),
        &body,
        &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()),
    )
    .unwrap();
    assert_eq!(ring.verify(&hs, &s, NOW), Err(TokenError::WrongAlgorithm));

    let unknown = forge(
        &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "nope"}),
        &body,
        &sig,
    );
    assert_eq!(ring.verify(&unknown, &s, NOW), Err(TokenError::UnknownKey));
    let missing = forge(&json!({"alg": "EdDSA", "typ": "at+jwt"}), &body, &sig);
    assert_eq!(ring.verify(&missing, &s, NOW), Err(TokenError::UnknownKey));
    let typ = forge(
        &json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}),
        &body,
        &sig,
    );
    assert_eq!(ring.verify(&typ, &s, NOW), Err(TokenError::WrongType));

    let mut changed = body.clone();
    changed["roles"] = json!(["admin"]);
    let header: Value =
        serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(
        ring.verify(&forge(&header, &changed, &sig), &s, NOW),
        Err(TokenError::BadSignature)
    );
    let mut bad_sig = sig.clone();
    bad_sig[0] ^= 1;
    assert_eq!(
        ring.verify(&forge(&header, &body, &bad_sig), &s, NOW),
        Err(TokenError::BadSignature)
    );

    // An attacker's own key, offered through jwk/jku headers, is never used.
    let attacker = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    h.typ = Some("at+jwt".into());
    h.kid = Some(attacker.kid().to_owned());
    h.jku = Some("https://evil.example.com/jwks.json".into());
    let evil = jsonwebtoken::encode(&h, &body, &attacker.encoding).unwrap();
    assert_eq!(ring.verify(&evil, &s, NOW), Err(TokenError::UnknownKey));
    h.kid = Some(kid.clone());
    let evil_our_kid = jsonwebtoken::encode(&h, &body, &attacker.encoding).unwrap();
    assert_eq!(
        ring.verify(&evil_our_kid, &s, NOW),
        Err(TokenError::BadSignature)
    );

    // Our own ES256 key is still the wrong algorithm for an EdDSA ring.
    let es = KeyRing::new(SigningKey::generate(Algorithm::ES256).unwrap(), vec![]).unwrap();
    let es_token = es.sign(&claims()).unwrap();
    assert_eq!(
        ring.verify(&es_token, &s, NOW),
        Err(TokenError::WrongAlgorithm)
    );

    let dots = ".".repeat(100_000);
    for garbage in ["", "a.b", "a.b.c", "a.b.c.d", dots.as_str(), "eyJ.eyJ.sig"] {
        assert!(ring.verify(garbage, &s, NOW).is_err(), "{garbage:.20}");
    }
}

#[test]
fn rotation_keeps_old_tokens_valid_and_signs_with_the_new_key() {
    let old = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let old_ring = KeyRing::new(
        SigningKey::from_pkcs8_der(Algorithm::EdDSA, old.pkcs8_der()).unwrap(),
        vec![],
    )
    .unwrap();
    let old_token = old_ring.sign(&claims()).unwrap();
    let new = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let new_kid = new.kid().to_owned();
    let rotated = KeyRing::new(new, vec![old]).unwrap();
    assert!(rotated.verify(&old_token, &settings(), NOW).is_ok());
    let fresh = rotated.sign(&claims()).unwrap();
    let header = jsonwebtoken::decode_header(&fresh).unwrap();
    assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
    assert_eq!(rotated.jwks()["keys"].as_array().unwrap().len(), 2);
    let stranger = ring(Algorithm::EdDSA).sign(&claims()).unwrap();
    assert_eq!(
        rotated.verify(&stranger, &settings(), NOW),
        Err(TokenError::UnknownKey)
    );
    assert!(KeyRing::new(
        SigningKey::generate(Algorithm::EdDSA).unwrap(),
        vec![SigningKey::generate(Algorithm::ES256).unwrap()]
    )
    .is_err());
}
