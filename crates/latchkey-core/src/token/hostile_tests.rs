//! Hostile tokens: each forgery from the issue, against every algorithm.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::crypto;
use jsonwebtoken::EncodingKey;
use serde_json::{json, Value};

use super::tests::{claims, key, part, ring_of, settings, ALL, NOW};
use super::*;

/// `header.payload` as base64url JSON (the header kept as raw text).
fn message(header: &str, payload: &Value) -> String {
    format!("{}.{}", B64.encode(header), B64.encode(payload.to_string()))
}

/// A token signed by `key` with an arbitrary header and payload.
pub(super) fn signed(header: &Value, payload: &Value, key: &SigningKey) -> String {
    signed_raw(&header.to_string(), payload, key)
}

fn signed_raw(header: &str, payload: &Value, key: &SigningKey) -> String {
    let m = message(header, payload);
    let sig = crypto::sign(m.as_bytes(), &key.encoding, key.algorithm().jwt()).unwrap();
    format!("{m}.{sig}")
}

/// One ring of one key of `alg`, with a valid body and header to mutate.
struct Fixture {
    ours: SigningKey,
    ring: KeyRing,
    kid: String,
    name: &'static str,
    body: Value,
    header: Value,
}

impl Fixture {
    fn new(alg: Algorithm) -> Self {
        let ours = key(alg);
        let (kid, name) = (ours.kid().to_owned(), alg.name());
        let fixture = Self {
            ring: ring_of(&ours),
            body: serde_json::to_value(claims()).unwrap(),
            header: json!({"alg": name, "typ": "at+jwt", "kid": kid}),
            ours,
            kid,
            name,
        };
        let control = fixture.sign(&fixture.header);
        assert!(fixture.verify(&control).is_ok(), "control case");
        fixture
    }

    fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        self.ring.verify(token, &settings(), NOW)
    }

    /// Signed by our own key, with this header.
    fn sign(&self, header: &Value) -> String {
        signed(header, &self.body, &self.ours)
    }

    /// Signed by our own key, with this header and this body.
    fn sign_body(&self, body: &Value) -> String {
        signed(&self.header, body, &self.ours)
    }
}

#[test]
fn alg_none_and_any_other_alg_are_refused() {
    for alg in ALL {
        let f = Fixture::new(alg);
        let none = json!({"alg": "none", "typ": "at+jwt", "kid": f.kid});
        let unsigned = message(&none.to_string(), &f.body);
        assert_eq!(
            f.verify(&format!("{unsigned}.")),
            Err(TokenError::WrongAlgorithm)
        );
        assert_eq!(
            f.verify(&format!("{unsigned}.c2ln")),
            Err(TokenError::WrongAlgorithm)
        );
        assert_eq!(f.verify(&unsigned), Err(TokenError::Malformed), "two parts");
        for spelling in [
            json!("None"),
            json!("NONE"),
            json!(""),
            json!(null),
            json!(["none"]),
        ] {
            let h = json!({"alg": spelling, "typ": "at+jwt", "kid": f.kid});
            assert_eq!(
                f.verify(&f.sign(&h)),
                Err(TokenError::WrongAlgorithm),
                "{h}"
            );
        }
        for other in [
            "eddsa", "es256", "rs256", "ES384", "PS256", "HS256", "Ed25519",
        ] {
            let h = json!({"alg": other, "typ": "at+jwt", "kid": f.kid});
            assert_eq!(
                f.verify(&f.sign(&h)),
                Err(TokenError::WrongAlgorithm),
                "{other}"
            );
        }
        let no_alg = json!({"typ": "at+jwt", "kid": f.kid});
        assert_eq!(f.verify(&f.sign(&no_alg)), Err(TokenError::WrongAlgorithm));
    }
}

#[test]
fn hmac_keyed_with_our_public_key_is_refused() {
    use jsonwebtoken::Algorithm::{HS256, HS384, HS512};
    for alg in ALL {
        let f = Fixture::new(alg);
        let jwk = f.ours.public_jwk();
        let text = jwk[if alg == Algorithm::RS256 { "n" } else { "x" }]
            .as_str()
            .unwrap();
        let raw = B64.decode(text).unwrap();
        let (jwk_text, jwks) = (jwk.to_string(), f.ring.jwks().to_string());
        for secret in [jwk_text.as_bytes(), jwks.as_bytes(), text.as_bytes(), &raw] {
            for hs in [HS256, HS384, HS512] {
                let h = json!({"alg": hs, "typ": "at+jwt", "kid": f.kid});
                let m = message(&h.to_string(), &f.body);
                let sig = crypto::sign(m.as_bytes(), &EncodingKey::from_secret(secret), hs);
                let token = format!("{m}.{}", sig.unwrap());
                assert_eq!(f.verify(&token), Err(TokenError::WrongAlgorithm), "{hs:?}");
            }
        }
    }
}

#[test]
fn unknown_or_missing_kid_is_refused() {
    for alg in ALL {
        let f = Fixture::new(alg);
        let name = f.name;
        for h in [
            json!({"alg": name, "typ": "at+jwt", "kid": "nope"}),
            json!({"alg": name, "typ": "at+jwt", "kid": f.kid.to_uppercase()}),
            json!({"alg": name, "typ": "at+jwt", "kid": ""}),
            json!({"alg": name, "typ": "at+jwt"}),
            json!({"alg": name, "typ": "at+jwt", "kid": [f.kid]}),
            json!({"alg": name, "typ": "at+jwt", "kid": null}),
        ] {
            assert_eq!(f.verify(&f.sign(&h)), Err(TokenError::UnknownKey), "{h}");
        }
    }
}

#[test]
fn only_the_at_jwt_type_is_accepted() {
    for alg in ALL {
        let f = Fixture::new(alg);
        let name = f.name;
        for typ in [
            json!("JWT"),
            json!("jwt"),
            json!("at+jwt "),
            json!("dpop+jwt"),
            json!(null),
            json!(1),
        ] {
            let h = json!({"alg": name, "typ": typ, "kid": f.kid});
            assert_eq!(f.verify(&f.sign(&h)), Err(TokenError::WrongType), "{typ}");
        }
        let no_typ = json!({"alg": name, "kid": f.kid});
        assert_eq!(f.verify(&f.sign(&no_typ)), Err(TokenError::WrongType));
        for typ in ["AT+JWT", "application/at+jwt", "Application/AT+JWT"] {
            let h = json!({"alg": name, "typ": typ, "kid": f.kid});
            assert!(f.verify(&f.sign(&h)).is_ok(), "{typ}");
        }
    }
}

#[test]
fn tampered_payload_or_signature_is_refused() {
    for alg in ALL {
        let f = Fixture::new(alg);
        let token = f.ring.sign(&claims()).unwrap();
        let mut parts = token.split('.');
        let (head, payload, sig) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let mut escalated = part(&token, 1);
        escalated["roles"] = json!(["admin"]);
        let forged = format!("{head}.{}.{sig}", B64.encode(escalated.to_string()));
        assert_eq!(f.verify(&forged), Err(TokenError::BadSignature));
        let mut bytes = B64.decode(sig).unwrap();
        bytes[10] ^= 1;
        let flipped = format!("{head}.{payload}.{}", B64.encode(&bytes));
        assert_eq!(f.verify(&flipped), Err(TokenError::BadSignature));
        let truncated = format!("{head}.{payload}.{}", &sig[..20]);
        assert_eq!(f.verify(&truncated), Err(TokenError::BadSignature));
        assert_eq!(
            f.verify(&format!("{head}.{payload}.")),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            f.verify(&format!("{head}.{payload}.{sig}=")),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            f.verify(&format!("{head}.{payload}.!!!!")),
            Err(TokenError::Malformed)
        );
        // Another of our tokens' signature on this payload.
        let other = f.ring.sign(&claims()).unwrap();
        let swapped = format!("{head}.{payload}.{}", other.rsplit('.').next().unwrap());
        assert_eq!(f.verify(&swapped), Err(TokenError::BadSignature));
    }
}

#[test]
fn attacker_keys_offered_in_headers_are_never_used() {
    for alg in ALL {
        let f = Fixture::new(alg);
        let attacker = key(alg);
        for extra in [
            json!({"jku": "https://evil.example.com/jwks.json"}),
            json!({"jwk": attacker.public_jwk()}),
            json!({"x5u": "https://evil.example.com/cert.pem"}),
            json!({"x5c": ["MIIBfake"]}),
        ] {
            let cases = [
                (attacker.kid(), TokenError::UnknownKey),
                (f.kid.as_str(), TokenError::BadSignature),
            ];
            for (kid, expected) in cases {
                let mut h = json!({"alg": f.name, "typ": "at+jwt", "kid": kid});
                h.as_object_mut()
                    .unwrap()
                    .extend(extra.as_object().unwrap().clone());
                let token = signed(&h, &f.body, &attacker);
                assert_eq!(f.verify(&token), Err(expected), "{h}");
            }
        }
    }
}

#[test]
fn crit_duplicate_members_and_wrong_claim_shapes_are_malformed() {
    for alg in ALL {
        let f = Fixture::new(alg);
        let (name, kid) = (f.name, &f.kid);
        let crit = json!({"alg": name, "typ": "at+jwt", "kid": kid, "crit": ["exp"], "exp": 1});
        assert_eq!(f.verify(&f.sign(&crit)), Err(TokenError::Malformed));
        // Parsers that disagree on duplicates must not open a gap: refused.
        let dup = format!(r#"{{"alg":"none","alg":"{name}","typ":"at+jwt","kid":"{kid}"}}"#);
        let dup = signed_raw(&dup, &f.body, &f.ours);
        assert_eq!(f.verify(&dup), Err(TokenError::Malformed));
        for (field, value) in [
            ("aud", json!(["latchkey", "other"])),
            ("exp", json!("soon")),
            ("exp", json!(1.5)),
            ("sub", Value::Null),
            ("roles", json!("admin")),
        ] {
            let mut body = f.body.clone();
            body[field] = value;
            assert_eq!(
                f.verify(&f.sign_body(&body)),
                Err(TokenError::Malformed),
                "{field}"
            );
        }
        let mut no_exp = f.body.clone();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(f.verify(&f.sign_body(&no_exp)), Err(TokenError::Malformed));
        assert_eq!(
            f.verify(&f.sign_body(&json!([]))),
            Err(TokenError::Malformed)
        );
        let mut big = f.body.clone();
        big["roles"] = json!(vec!["r"; 4000]);
        assert_eq!(
            f.verify(&f.sign_body(&big)),
            Err(TokenError::Malformed),
            "oversized"
        );
    }
}
