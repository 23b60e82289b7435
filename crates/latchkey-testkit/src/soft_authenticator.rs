//! A software WebAuthn authenticator for tests: ES256 (P-256) keys, "none"
//! attestation, user presence and verification always set, a signature counter
//! per credential, and knobs to misbehave (another origin, a cloned device).
//!
//! It speaks the JSON a browser hands to the server (binary fields base64url),
//! built from the server's own options, so tests exercise the real
//! verification in webauthn-rs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::app::fail;

const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;
const AT: u8 = 0x40;

/// One credential held by the authenticator.
#[derive(Clone)]
pub struct SoftCredential {
    /// Credential id.
    pub id: Vec<u8>,
    pkcs8: Vec<u8>,
    /// The user handle the server gave at registration.
    pub user_handle: Vec<u8>,
    /// RP id it is bound to.
    pub rp_id: String,
    /// Signature counter (incremented by each assertion).
    pub counter: u32,
}

/// A software authenticator.
#[derive(Clone)]
pub struct SoftAuthenticator {
    /// The origin written into `clientDataJSON` (the page's origin).
    pub origin: String,
    /// Set the backup-eligible and backed-up flags (a synced passkey).
    pub synced: bool,
    credentials: Vec<SoftCredential>,
}

/// CBOR head for `major` type with `len`/value.
fn head(major: u8, len: usize, out: &mut Vec<u8>) {
    let m = major << 5;
    match len {
        0..=23 => out.push(m | u8::try_from(len).unwrap_or(0)),
        24..=255 => {
            out.push(m | 0x18);
            out.push(u8::try_from(len).unwrap_or(0));
        }
        _ => {
            out.push(m | 0x19);
            out.extend_from_slice(&u16::try_from(len).unwrap_or(0).to_be_bytes());
        }
    }
}

fn cbor_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    head(2, bytes.len(), out);
    out.extend_from_slice(bytes);
}

fn cbor_text(text: &str, out: &mut Vec<u8>) {
    head(3, text.len(), out);
    out.extend_from_slice(text.as_bytes());
}

/// A small signed integer (−24..=23).
fn cbor_int(value: i8, out: &mut Vec<u8>) {
    if value >= 0 {
        head(0, usize::from(value.unsigned_abs()), out);
    } else {
        head(1, usize::from((-1 - value).unsigned_abs()), out);
    }
}

fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    B64.decode(text.trim_end_matches('='))
        .unwrap_or_else(|e| fail(&format!("base64url: {e}")))
}

impl SoftAuthenticator {
    /// An empty authenticator used from pages of `origin`.
    pub fn new(origin: &str) -> Self {
        Self {
            origin: origin.to_owned(),
            synced: false,
            credentials: Vec::new(),
        }
    }

    /// The credentials it holds.
    pub fn credentials(&self) -> &[SoftCredential] {
        &self.credentials
    }

    fn flags(&self, base: u8) -> u8 {
        if self.synced {
            base | BE | BS
        } else {
            base
        }
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        json!({
            "type": kind,
            "challenge": challenge,
            "origin": self.origin,
            "crossOrigin": false,
        })
        .to_string()
        .into_bytes()
    }

    /// Answers `navigator.credentials.create()` options (the server's
    /// `options` object, with `publicKey`) with a new credential.
    pub fn register(&mut self, options: &Value) -> Value {
        let pk = &options["publicKey"];
        let rp_id = pk["rp"]["id"].as_str().unwrap_or_default().to_owned();
        let challenge = pk["challenge"].as_str().unwrap_or_default();
        let user_handle = unb64(pk["user"]["id"].as_str().unwrap_or_default());
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .unwrap_or_else(|_| fail("P-256 key generation"))
            .as_ref()
            .to_vec();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8, &rng)
            .unwrap_or_else(|_| fail("P-256 key"));
        let point = key.public_key().as_ref();
        let mut id = vec![0u8; 16];
        ring::rand::SecureRandom::fill(&rng, &mut id).unwrap_or_else(|_| fail("rng"));

        let mut cose = Vec::new();
        head(5, 5, &mut cose);
        cbor_int(1, &mut cose);
        cbor_int(2, &mut cose); // kty: EC2
        cbor_int(3, &mut cose);
        cbor_int(-7, &mut cose); // alg: ES256
        cbor_int(-1, &mut cose);
        cbor_int(1, &mut cose); // crv: P-256
        cbor_int(-2, &mut cose);
        cbor_bytes(&point[1..33], &mut cose);
        cbor_int(-3, &mut cose);
        cbor_bytes(&point[33..65], &mut cose);

        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags(UP | UV | AT));
        auth_data.extend_from_slice(&0u32.to_be_bytes());
        auth_data.extend_from_slice(&[0u8; 16]); // AAGUID
        auth_data.extend_from_slice(&u16::try_from(id.len()).unwrap_or(0).to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&cose);

        let mut attestation = Vec::new();
        head(5, 3, &mut attestation);
        cbor_text("fmt", &mut attestation);
        cbor_text("none", &mut attestation);
        cbor_text("attStmt", &mut attestation);
        head(5, 0, &mut attestation);
        cbor_text("authData", &mut attestation);
        cbor_bytes(&auth_data, &mut attestation);

        let client_data = self.client_data("webauthn.create", challenge);
        self.credentials.push(SoftCredential {
            id: id.clone(),
            pkcs8,
            user_handle,
            rp_id,
            counter: 0,
        });
        json!({
            "id": b64(&id),
            "rawId": b64(&id),
            "type": "public-key",
            "response": {
                "attestationObject": b64(&attestation),
                "clientDataJSON": b64(&client_data),
            },
            "extensions": {},
        })
    }

    /// Answers `navigator.credentials.get()` options: with the first allowed
    /// credential, or (no `allowCredentials`: discoverable) the first one for
    /// the RP id. The counter grows by one.
    pub fn assert(&mut self, options: &Value) -> Value {
        let pk = &options["publicKey"];
        let rp_id = pk["rpId"].as_str().unwrap_or_default().to_owned();
        let challenge = pk["challenge"].as_str().unwrap_or_default().to_owned();
        let allowed: Vec<Vec<u8>> = pk["allowCredentials"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|c| c["id"].as_str().map(unb64))
                    .collect()
            })
            .unwrap_or_default();
        let flags = self.flags(UP | UV);
        let origin_data = self.client_data("webauthn.get", &challenge);
        let credential = self
            .credentials
            .iter_mut()
            .find(|c| c.rp_id == rp_id && (allowed.is_empty() || allowed.contains(&c.id)))
            .unwrap_or_else(|| fail("no credential for these options"));
        credential.counter += 1;
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(flags);
        auth_data.extend_from_slice(&credential.counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&origin_data));
        let rng = SystemRandom::new();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &credential.pkcs8, &rng)
                .unwrap_or_else(|_| fail("P-256 key"));
        let signature = key.sign(&rng, &signed).unwrap_or_else(|_| fail("signing"));
        json!({
            "id": b64(&credential.id),
            "rawId": b64(&credential.id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&origin_data),
                "signature": b64(signature.as_ref()),
                "userHandle": b64(&credential.user_handle),
            },
            "extensions": {},
        })
    }
}
