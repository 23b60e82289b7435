//! Signing keys: generation, PKCS#8 import/export, public JWK, RFC 7638 `kid`.

use std::fmt;
use std::str::FromStr;

use jsonwebtoken::{DecodingKey, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use zeroize::Zeroizing;

use super::{jwk, TokenError};

/// Signature algorithms latchkey signs access tokens with. Parsed from
/// configuration case-insensitively (`"EdDSA"`, `"eddsa"`, `"ES256"`, `"RS256"`;
/// `"Ed25519"` is accepted for EdDSA); serialised as the JOSE `alg` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// Ed25519 (default).
    #[default]
    EdDSA,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, keys of 2048 to 8192 bits (2048 generated).
    RS256,
}

impl Algorithm {
    /// The JOSE `alg` name (`EdDSA`, `ES256`, `RS256`), exactly as in a JWT header.
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

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The configuration value is not one of the supported algorithms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported signing algorithm (expected EdDSA, ES256 or RS256)")]
pub struct UnknownAlgorithm;

impl FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    /// Case-insensitive; only the three supported names (and `Ed25519`) parse.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("EdDSA") || s.eq_ignore_ascii_case("Ed25519") {
            Ok(Self::EdDSA)
        } else if s.eq_ignore_ascii_case("ES256") {
            Ok(Self::ES256)
        } else if s.eq_ignore_ascii_case("RS256") {
            Ok(Self::RS256)
        } else {
            Err(UnknownAlgorithm)
        }
    }
}

impl Serialize for Algorithm {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Algorithm {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A private signing key with its public half.
///
/// `Debug` shows only `kid` and algorithm, never key bytes. The PKCS#8 DER copy
/// held here is zeroized on drop. (The parsed key inside `jsonwebtoken`/`ring`
/// is not: those crates do not zeroize.)
pub struct SigningKey {
    alg: Algorithm,
    kid: String,
    der: Zeroizing<Vec<u8>>,
    pub(crate) encoding: EncodingKey,
    pub(crate) decoding: DecodingKey,
    jwk: Value,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Signed and verified once at import: a key whose halves disagree, or that ring
/// would refuse to sign with, fails at load time instead of on the first login.
const SELF_TEST_MESSAGE: &[u8] = b"latchkey signing key self-test";

impl SigningKey {
    /// A fresh key from the OS random generator: Ed25519 and P-256 by ring,
    /// RSA 2048-bit by the `rsa` crate; always stored as PKCS#8 DER.
    pub fn generate(alg: Algorithm) -> Result<Self, TokenError> {
        let rng = SystemRandom::new();
        let der = match alg {
            Algorithm::EdDSA => Zeroizing::new(
                Ed25519KeyPair::generate_pkcs8(&rng)
                    .map_err(|_| TokenError::Key("Ed25519 key generation failed"))?
                    .as_ref()
                    .to_vec(),
            ),
            Algorithm::ES256 => Zeroizing::new(
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| TokenError::Key("P-256 key generation failed"))?
                    .as_ref()
                    .to_vec(),
            ),
            Algorithm::RS256 => {
                use rsa::pkcs8::EncodePrivateKey;
                let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)
                    .map_err(|_| TokenError::Key("RSA key generation failed"))?;
                // `SecretDocument` zeroizes itself; our copy is zeroized too.
                let doc = key
                    .to_pkcs8_der()
                    .map_err(|_| TokenError::Key("RSA key encoding failed"))?;
                Zeroizing::new(doc.as_bytes().to_vec())
            }
        };
        Self::from_pkcs8_der(alg, &der)
    }

    /// Imports a PKCS#8 DER private key of `alg`. Fails with [`TokenError::Key`]
    /// if the DER is not a key of that algorithm (an Ed25519 key never loads as
    /// ES256), an RSA key is outside 2048..=8192 bits, or a signature made with
    /// the private half does not verify with the public half.
    pub fn from_pkcs8_der(alg: Algorithm, der: &[u8]) -> Result<Self, TokenError> {
        let (encoding, decoding, mut public) = match alg {
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(|_| TokenError::Key("not an Ed25519 PKCS#8 key"))?;
                let public = pair.public_key().as_ref();
                (
                    EncodingKey::from_ed_der(der),
                    DecodingKey::from_ed_der(public),
                    jwk::okp_ed25519(public),
                )
            }
            Algorithm::ES256 => {
                let pair = EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                    &SystemRandom::new(),
                )
                .map_err(|_| TokenError::Key("not a P-256 PKCS#8 key"))?;
                // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = pair.public_key().as_ref();
                let (x, y) = match point {
                    [4, coordinates @ ..] if coordinates.len() == 64 => coordinates.split_at(32),
                    _ => return Err(TokenError::Key("unexpected P-256 public key")),
                };
                (
                    EncodingKey::from_ec_der(der),
                    // With the ring backend this is the raw uncompressed point.
                    DecodingKey::from_ec_der(point),
                    jwk::ec_p256(x, y),
                )
            }
            Algorithm::RS256 => {
                use rsa::pkcs1::EncodeRsaPrivateKey;
                use rsa::pkcs8::DecodePrivateKey;
                use rsa::traits::PublicKeyParts;
                let key = rsa::RsaPrivateKey::from_pkcs8_der(der)
                    .map_err(|_| TokenError::Key("not an RSA PKCS#8 key"))?;
                if !(256..=1024).contains(&key.size()) {
                    return Err(TokenError::Key("RSA key must have 2048 to 8192 bits"));
                }
                // jsonwebtoken (ring) signs with PKCS#1; the document zeroizes itself.
                let pkcs1 = key
                    .to_pkcs1_der()
                    .map_err(|_| TokenError::Key("RSA key encoding failed"))?;
                let (n, e) = (key.n().to_bytes_be(), key.e().to_bytes_be());
                (
                    EncodingKey::from_rsa_der(pkcs1.as_bytes()),
                    DecodingKey::from_rsa_raw_components(&n, &e),
                    jwk::rsa(&n, &e),
                )
            }
        };
        self_test(alg, &encoding, &decoding)?;
        let kid = jwk::finish(&mut public, alg)?;
        Ok(Self {
            alg,
            kid,
            der: Zeroizing::new(der.to_vec()),
            encoding,
            decoding,
            jwk: public,
        })
    }

    /// The private key as PKCS#8 DER, for the caller to persist protected (mode
    /// 0600 or encrypted). Never log it.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.der
    }

    /// The key id: the RFC 7638 SHA-256 thumbprint of the public key, base64url
    /// without padding. Equal keys always have equal ids, across restarts.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key signs with (and the only one it verifies).
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// The public JWK: `kty` and its public members (`crv`+`x` for OKP,
    /// `crv`+`x`+`y` for EC, `n`+`e` for RSA) plus `kid`, `alg` and `use: sig`.
    /// Never a private member.
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }
}

fn self_test(alg: Algorithm, enc: &EncodingKey, dec: &DecodingKey) -> Result<(), TokenError> {
    let signature = jsonwebtoken::crypto::sign(SELF_TEST_MESSAGE, enc, alg.jwt())
        .map_err(|_| TokenError::Key("the key cannot sign"))?;
    match jsonwebtoken::crypto::verify(&signature, SELF_TEST_MESSAGE, dec, alg.jwt()) {
        Ok(true) => Ok(()),
        _ => Err(TokenError::Key("private and public halves do not match")),
    }
}
