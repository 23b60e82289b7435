//! Signing keys: generation, PKCS#8 import/export, public JWK, RFC 7638 `kid`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::{DecodingKey, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::TokenError;

/// Signature algorithms latchkey signs access tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Ed25519 (default).
    EdDSA,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    RS256,
}

impl Algorithm {
    /// The JOSE `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDSA => "EdDSA",
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
        }
    }

    pub(crate) fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
        }
    }
}

/// A private signing key with its public half. `Debug` shows only `kid` and
/// algorithm; the private DER is zeroized on drop.
pub struct SigningKey {
    alg: Algorithm,
    kid: String,
    der: Zeroizing<Vec<u8>>,
    pub(crate) encoding: EncodingKey,
    pub(crate) decoding: DecodingKey,
    jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// RFC 7638 thumbprint of a public JWK: SHA-256 over the required members in
/// lexicographic order, base64url without padding.
pub fn thumbprint(jwk: &Value) -> Result<String, TokenError> {
    let s = |k: &str| jwk.get(k).and_then(Value::as_str).ok_or(TokenError::Key);
    let canonical = match s("kty")? {
        "OKP" => format!(r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#, s("crv")?, s("x")?),
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            s("crv")?,
            s("x")?,
            s("y")?
        ),
        "RSA" => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s("e")?, s("n")?),
        _ => return Err(TokenError::Key),
    };
    Ok(B64.encode(Sha256::digest(canonical.as_bytes())))
}

impl SigningKey {
    /// A fresh key from the OS random generator.
    pub fn generate(alg: Algorithm) -> Result<Self, TokenError> {
        let rng = SystemRandom::new();
        let der = match alg {
            Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| TokenError::Key)?
                .as_ref()
                .to_vec(),
            Algorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| TokenError::Key)?
                    .as_ref()
                    .to_vec()
            }
            Algorithm::RS256 => {
                use rsa::pkcs8::EncodePrivateKey;
                let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
                    .map_err(|_| TokenError::Key)?;
                key.to_pkcs8_der()
                    .map_err(|_| TokenError::Key)?
                    .as_bytes()
                    .to_vec()
            }
        };
        Self::from_pkcs8_der(alg, &der)
    }

    /// Imports a PKCS#8 DER private key of `alg`.
    pub fn from_pkcs8_der(alg: Algorithm, der: &[u8]) -> Result<Self, TokenError> {
        let (encoding, decoding, jwk) = match alg {
            Algorithm::EdDSA => {
                let pair =
                    Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| TokenError::Key)?;
                let public = pair.public_key().as_ref();
                let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(public)});
                (
                    EncodingKey::from_ed_der(der),
                    DecodingKey::from_ed_der(public),
                    jwk,
                )
            }
            Algorithm::ES256 => {
                let pair = EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                    &SystemRandom::new(),
                )
                .map_err(|_| TokenError::Key)?;
                let point = pair.public_key().as_ref();
                if point.len() != 65 || point[0] != 4 {
                    return Err(TokenError::Key);
                }
                let jwk = json!({"kty": "EC", "crv": "P-256", "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..])});
                (
                    EncodingKey::from_ec_der(der),
                    DecodingKey::from_ec_der(point),
                    jwk,
                )
            }
            Algorithm::RS256 => {
                use rsa::pkcs1::EncodeRsaPrivateKey;
                use rsa::pkcs8::DecodePrivateKey;
                use rsa::traits::PublicKeyParts;
                let key = rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(|_| TokenError::Key)?;
                let pkcs1 = key.to_pkcs1_der().map_err(|_| TokenError::Key)?;
                let (n, e) = (key.n().to_bytes_be(), key.e().to_bytes_be());
                let jwk = json!({"kty": "RSA", "n": B64.encode(&n), "e": B64.encode(&e)});
                (
                    EncodingKey::from_rsa_der(pkcs1.as_bytes()),
                    DecodingKey::from_rsa_raw_components(&n, &e),
                    jwk,
                )
            }
        };
        let kid = thumbprint(&jwk)?;
        let mut jwk = jwk;
        if let Some(obj) = jwk.as_object_mut() {
            obj.insert("kid".into(), json!(kid));
            obj.insert("alg".into(), json!(alg.name()));
            obj.insert("use".into(), json!("sig"));
        }
        Ok(Self {
            alg,
            kid,
            der: Zeroizing::new(der.to_vec()),
            encoding,
            decoding,
            jwk,
        })
    }

    /// The private key as PKCS#8 DER, for the caller to persist protected.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.der
    }

    /// The key id: the RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public JWK (with `kid`, `alg`, `use: sig`); never private members.
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }
}
