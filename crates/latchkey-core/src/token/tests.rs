//! Known answers, round trips, JWK sets, rotation and time claims.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::{json, Value};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::*;

pub(super) const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);
pub(super) const ALL: [Algorithm; 3] = [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256];

pub(super) fn settings() -> TokenSettings {
    TokenSettings::new("https://auth.example.com", "latchkey")
}

pub(super) fn claims() -> AccessClaims {
    let (sub, sid) = (Uuid::now_v7(), Uuid::now_v7());
    new_claims(&settings(), NOW, sub, sid, NOW, vec!["pwd".into()], vec![])
}

pub(super) fn key(alg: Algorithm) -> SigningKey {
    SigningKey::generate(alg).unwrap()
}

pub(super) fn copy(key: &SigningKey) -> SigningKey {
    SigningKey::from_pkcs8_der(key.algorithm(), key.pkcs8_der()).unwrap()
}

pub(super) fn ring_of(key: &SigningKey) -> KeyRing {
    KeyRing::new(copy(key), vec![]).unwrap()
}

/// Decodes one base64url JSON part of a token.
pub(super) fn part(token: &str, index: usize) -> Value {
    let text = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&B64.decode(text).unwrap()).unwrap()
}

const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

#[test]
fn rfc7638_known_answer() {
    let jwk =
        json!({"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"});
    let expected = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
    assert_eq!(thumbprint(&jwk).unwrap(), expected);
    // Member order and optional members do not matter.
    let reordered = json!({"use": "sig", "e": "AQAB", "n": RFC7638_N, "kty": "RSA"});
    assert_eq!(thumbprint(&reordered).unwrap(), expected);
    for bad in [
        json!({"kty": "RSA", "n": RFC7638_N}),
        json!({"kty": "RSA", "n": RFC7638_N, "e": 65537}),
        json!({"kty": "oct", "k": "c2VjcmV0"}),
        json!("RSA"),
    ] {
        assert!(matches!(thumbprint(&bad), Err(TokenError::Key(_))), "{bad}");
    }
}

/// RFC 8037 appendix A: the Ed25519 key, its thumbprint and a JWS signature.
#[test]
fn rfc8037_ed25519_known_answers() {
    let seed = B64
        .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
        .unwrap();
    // PKCS#8 v1 wrapper for an Ed25519 seed (RFC 8410).
    let mut der = hex_bytes("302e020100300506032b657004220420");
    der.extend_from_slice(&seed);
    let key = SigningKey::from_pkcs8_der(Algorithm::EdDSA, &der).unwrap();
    let jwk = key.public_jwk();
    assert_eq!(jwk["x"], "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
    assert_eq!(key.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    let message = b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    let signature =
        jsonwebtoken::crypto::sign(message, &key.encoding, jsonwebtoken::Algorithm::EdDSA).unwrap();
    assert_eq!(
        signature,
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    );
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// The public members a JWK of `alg` must have, with their decoded lengths.
fn check_public_jwk(jwk: &Value, alg: Algorithm, kid: &str) {
    let len = |m: &str| B64.decode(jwk[m].as_str().unwrap()).unwrap().len();
    let mut members: Vec<&str> = jwk
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    members.sort_unstable();
    match alg {
        Algorithm::EdDSA => {
            assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x"]);
            assert_eq!(
                (&jwk["kty"], &jwk["crv"], len("x")),
                (&json!("OKP"), &json!("Ed25519"), 32)
            );
        }
        Algorithm::ES256 => {
            assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
            assert_eq!((&jwk["kty"], &jwk["crv"]), (&json!("EC"), &json!("P-256")));
            assert_eq!((len("x"), len("y")), (32, 32));
        }
        Algorithm::RS256 => {
            assert_eq!(members, ["alg", "e", "kid", "kty", "n", "use"]);
            assert_eq!(
                (&jwk["kty"], &jwk["e"], len("n")),
                (&json!("RSA"), &json!("AQAB"), 256)
            );
        }
    }
    assert_eq!(
        (&jwk["kid"], &jwk["alg"], &jwk["use"]),
        (&json!(kid), &json!(alg.name()), &json!("sig"))
    );
    assert_eq!(thumbprint(jwk).unwrap(), kid);
}

#[test]
fn every_algorithm_round_trips_with_a_minimal_header() {
    for alg in ALL {
        let key = key(alg);
        let kid = key.kid().to_owned();
        assert_eq!(kid, thumbprint(key.public_jwk()).unwrap());
        check_public_jwk(key.public_jwk(), alg, &kid);
        assert_eq!(copy(&key).kid(), kid, "reloading keeps the kid");
        let debug = format!("{key:?}");
        assert_eq!(
            debug,
            format!("SigningKey {{ alg: {alg:?}, kid: {kid:?}, .. }}")
        );

        let ring = KeyRing::new(key, vec![]).unwrap();
        let c = claims();
        let token = ring.sign(&c).unwrap();
        assert_eq!(
            part(&token, 0),
            json!({"alg": alg.name(), "typ": "at+jwt", "kid": kid})
        );
        assert_eq!(part(&token, 1), serde_json::to_value(&c).unwrap());
        assert_eq!(ring.verify(&token, &settings(), NOW).unwrap(), c, "{alg:?}");
    }
}

#[test]
fn a_key_loads_only_as_its_own_algorithm() {
    for alg in ALL {
        let der = key(alg).pkcs8_der().to_vec();
        for other in ALL.into_iter().filter(|o| *o != alg) {
            let result = SigningKey::from_pkcs8_der(other, &der);
            assert!(
                matches!(result, Err(TokenError::Key(_))),
                "{alg:?} as {other:?}"
            );
        }
        let mut corrupt = der.clone();
        corrupt.truncate(der.len() - 1);
        assert!(SigningKey::from_pkcs8_der(alg, &corrupt).is_err());
        assert!(SigningKey::from_pkcs8_der(alg, b"").is_err());
    }
}

#[test]
fn jwks_lists_the_current_then_previous_keys() {
    for alg in ALL {
        let (current, old1, old2) = (key(alg), key(alg), key(alg));
        let kids = [current.kid(), old1.kid(), old2.kid()].map(str::to_owned);
        let ring = KeyRing::new(current, vec![old1, copy(&old2), old2]).unwrap();
        let jwks = ring.jwks();
        assert_eq!(jwks.as_object().unwrap().len(), 1);
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 3, "the duplicate previous key is listed once");
        for (jwk, kid) in keys.iter().zip(&kids) {
            check_public_jwk(jwk, alg, kid);
        }
        assert_eq!(ring.current_kid(), kids[0]);
    }
}

#[test]
fn rotation_signs_with_the_new_key_and_keeps_old_tokens_valid() {
    let old = key(Algorithm::EdDSA);
    let old_token = ring_of(&old).sign(&claims()).unwrap();
    let new = key(Algorithm::EdDSA);
    let new_kid = new.kid().to_owned();
    let rotated = KeyRing::new(new, vec![old]).unwrap();
    assert!(rotated.verify(&old_token, &settings(), NOW).is_ok());
    let fresh = rotated.sign(&claims()).unwrap();
    assert_eq!(part(&fresh, 0)["kid"], json!(new_kid));
    assert!(rotated.verify(&fresh, &settings(), NOW).is_ok());
    let stranger = ring_of(&key(Algorithm::EdDSA)).sign(&claims()).unwrap();
    assert_eq!(
        rotated.verify(&stranger, &settings(), NOW),
        Err(TokenError::UnknownKey)
    );
    // Once the old key is retired, its tokens stop verifying.
    let retired = KeyRing::new(copy(&key(Algorithm::EdDSA)), vec![]).unwrap();
    assert_eq!(
        retired.verify(&old_token, &settings(), NOW),
        Err(TokenError::UnknownKey)
    );
    let mixed = KeyRing::new(key(Algorithm::EdDSA), vec![key(Algorithm::ES256)]);
    assert!(matches!(mixed, Err(TokenError::Key(_))));
}

#[test]
fn new_claims_follow_the_settings_and_the_injected_clock() {
    let s = settings();
    assert_eq!(
        (s.ttl, s.leeway),
        (Duration::minutes(15), Duration::seconds(60))
    );
    let (sub, sid) = (Uuid::now_v7(), Uuid::now_v7());
    let auth_time = NOW - Duration::hours(1);
    let c = new_claims(
        &s,
        NOW,
        sub,
        sid,
        auth_time,
        vec!["pwd".into()],
        vec!["admin".into()],
    );
    assert_eq!(
        (c.iss.as_str(), c.aud.as_str()),
        ("https://auth.example.com", "latchkey")
    );
    assert_eq!((c.sub, c.sid), (sub.to_string(), sid.to_string()));
    assert_eq!(
        (c.iat, c.nbf, c.exp),
        (
            NOW.unix_timestamp(),
            NOW.unix_timestamp(),
            NOW.unix_timestamp() + 900
        )
    );
    assert_eq!(c.auth_time, auth_time.unix_timestamp());
    let jti = Uuid::parse_str(&c.jti).unwrap();
    assert_eq!(jti.get_version_num(), 7);
    let (secs, _) = jti.get_timestamp().unwrap().to_unix();
    assert_eq!(i64::try_from(secs).unwrap(), NOW.unix_timestamp());
    assert_ne!(c.jti, claims().jti);
    let huge = TokenSettings {
        ttl: Duration::MAX,
        ..settings()
    };
    assert_eq!(
        new_claims(&huge, NOW, sub, sid, NOW, vec![], vec![]).exp,
        i64::MAX
    );
}

#[test]
fn algorithms_parse_from_configuration_case_insensitively() {
    for (text, alg) in [
        ("EdDSA", Algorithm::EdDSA),
        ("eddsa", Algorithm::EdDSA),
        ("Ed25519", Algorithm::EdDSA),
        ("ES256", Algorithm::ES256),
        ("es256", Algorithm::ES256),
        ("Rs256", Algorithm::RS256),
    ] {
        assert_eq!(text.parse::<Algorithm>(), Ok(alg));
        assert_eq!(
            serde_json::from_value::<Algorithm>(json!(text)).unwrap(),
            alg
        );
    }
    for bad in ["", "none", "HS256", "ES384", "RS512", "PS256"] {
        assert!(bad.parse::<Algorithm>().is_err(), "{bad}");
        assert!(serde_json::from_value::<Algorithm>(json!(bad)).is_err());
    }
    assert_eq!(
        serde_json::to_value(Algorithm::ES256).unwrap(),
        json!("ES256")
    );
    assert_eq!(Algorithm::default(), Algorithm::EdDSA);
}
