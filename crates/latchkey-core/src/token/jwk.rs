//! Public JWKs and their RFC 7638 thumbprints.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::keys::Algorithm;
use super::TokenError;

/// RFC 7638 thumbprint of a public JWK: SHA-256 over the JSON object holding only
/// the required members of its `kty` (`OKP`: crv, kty, x; `EC`: crv, kty, x, y;
/// `RSA`: e, kty, n) in lexicographic order without whitespace, base64url without
/// padding. Other members (`kid`, `alg`, `use`, private members) never change it.
/// Fails with [`TokenError::Key`] for another `kty` or a missing or non-string
/// required member.
pub fn thumbprint(jwk: &Value) -> Result<String, TokenError> {
    let member = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .ok_or(TokenError::Key("JWK lacks a required member"))
    };
    // Members are written in lexicographic order, so the output is canonical
    // whether or not serde_json preserves insertion order.
    let required = match member("kty")? {
        "OKP" => json!({"crv": member("crv")?, "kty": "OKP", "x": member("x")?}),
        "EC" => json!({"crv": member("crv")?, "kty": "EC", "x": member("x")?, "y": member("y")?}),
        "RSA" => json!({"e": member("e")?, "kty": "RSA", "n": member("n")?}),
        _ => return Err(TokenError::Key("unsupported JWK key type")),
    };
    let canonical = serde_json::to_string(&required)
        .map_err(|_| TokenError::Internal("JWK serialisation failed"))?;
    Ok(B64.encode(Sha256::digest(canonical.as_bytes())))
}

/// The public JWK of an Ed25519 key (RFC 8037) from its 32-byte public key.
pub(crate) fn okp_ed25519(public: &[u8]) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(public)})
}

/// The public JWK of a P-256 key from its coordinates.
pub(crate) fn ec_p256(x: &[u8], y: &[u8]) -> Value {
    json!({"kty": "EC", "crv": "P-256", "x": B64.encode(x), "y": B64.encode(y)})
}

/// The public JWK of an RSA key from its big-endian modulus and exponent.
pub(crate) fn rsa(n: &[u8], e: &[u8]) -> Value {
    json!({"kty": "RSA", "n": B64.encode(n), "e": B64.encode(e)})
}

/// Adds `kid` (the thumbprint), `alg` and `use: sig` to a public JWK and returns
/// the `kid`.
pub(crate) fn finish(jwk: &mut Value, alg: Algorithm) -> Result<String, TokenError> {
    let kid = thumbprint(jwk)?;
    let object = jwk
        .as_object_mut()
        .ok_or(TokenError::Internal("JWK is not an object"))?;
    object.insert("kid".into(), json!(kid));
    object.insert("alg".into(), json!(alg.name()));
    object.insert("use".into(), json!("sig"));
    Ok(kid)
}
