//! The key ring: signs with the current key, verifies strictly with any of ours.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Header, Validation};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use super::access::{AccessClaims, TokenSettings, ACCESS_TOKEN_TYPE};
use super::keys::{Algorithm, SigningKey};
use super::TokenError;

/// Tokens longer than this are refused before any decoding.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The current signing key and the previous keys still inside their verification
/// window, all of one algorithm. Which previous keys to keep (until every token
/// they signed has expired) is the caller's decision; the ring publishes and
/// accepts exactly the keys it was given.
#[derive(Debug)]
pub struct KeyRing {
    current: SigningKey,
    previous: Vec<SigningKey>,
}

impl KeyRing {
    /// A ring; fails with [`TokenError::Key`] unless every key uses the current
    /// key's algorithm. A previous key equal to an earlier one (same `kid`) is
    /// dropped, so the JWK set never lists a key twice.
    pub fn new(current: SigningKey, previous: Vec<SigningKey>) -> Result<Self, TokenError> {
        if previous
            .iter()
            .any(|k| k.algorithm() != current.algorithm())
        {
            return Err(TokenError::Key(
                "every key of a ring must share one algorithm",
            ));
        }
        let mut kept: Vec<SigningKey> = Vec::with_capacity(previous.len());
        for key in previous {
            if key.kid() != current.kid() && kept.iter().all(|k| k.kid() != key.kid()) {
                kept.push(key);
            }
        }
        Ok(Self {
            current,
            previous: kept,
        })
    }

    /// The algorithm of every key in the ring: the only one tokens may use.
    pub fn algorithm(&self) -> Algorithm {
        self.current.algorithm()
    }

    /// The `kid` new tokens are signed with.
    pub fn current_kid(&self) -> &str {
        self.current.kid()
    }

    fn keys(&self) -> impl Iterator<Item = &SigningKey> {
        std::iter::once(&self.current).chain(&self.previous)
    }

    /// Signs with the current key. The header is exactly `typ: at+jwt`, `alg`
    /// and `kid` (the current key's thumbprint); nothing else.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        let mut header = Header::new(self.algorithm().jwt());
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(self.current.kid().to_owned());
        jsonwebtoken::encode(&header, claims, &self.current.encoding)
            .map_err(|_| TokenError::Internal("signing failed"))
    }

    /// Verifies an access token; reads no clock (`now` is injected).
    ///
    /// In order: at most [`MAX_TOKEN_LEN`] bytes and three parts with a
    /// base64url JSON-object header without `crit` (else `Malformed`); `typ` is
    /// `at+jwt` or `application/at+jwt`, ASCII case-insensitive (else
    /// `WrongType`); `alg` equals the ring's algorithm exactly, so `none`, HMAC
    /// and other families are refused (`WrongAlgorithm`); `kid` names one of our
    /// keys (`UnknownKey`). `jku`, `x5u`, `jwk` and `x5c` headers are never read.
    /// The signature is then checked with that key and our algorithm only
    /// (`BadSignature`), then `iss`, `aud`, `exp` and `nbf` against `now` with at
    /// most 60 s leeway.
    pub fn verify(
        &self,
        token: &str,
        settings: &TokenSettings,
        now: OffsetDateTime,
    ) -> Result<AccessClaims, TokenError> {
        let header = parse_header(token)?;
        let text = |name: &str| header.get(name).and_then(Value::as_str);
        if !text("typ").is_some_and(is_access_token_type) {
            return Err(TokenError::WrongType);
        }
        let alg = self.algorithm();
        if text("alg") != Some(alg.name()) {
            return Err(TokenError::WrongAlgorithm);
        }
        let key = text("kid")
            .and_then(|kid| self.keys().find(|k| k.kid() == kid))
            .ok_or(TokenError::UnknownKey)?;

        // The library only checks the signature; every claim is checked below.
        let mut validation = Validation::new(alg.jwt());
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
                _ => TokenError::Malformed,
            })?
            .claims;
        check_claims(&claims, settings, now)?;
        Ok(claims)
    }

    /// The public JWK set for `/.well-known/jwks.json`: `{"keys": [current,
    /// previous...]}`, public members only.
    pub fn jwks(&self) -> Value {
        let keys: Vec<&Value> = self.keys().map(SigningKey::public_jwk).collect();
        json!({ "keys": keys })
    }
}

/// `at+jwt`, with or without the `application/` prefix (RFC 7515 §4.1.9).
fn is_access_token_type(typ: &str) -> bool {
    let bare = typ
        .get(..12)
        .filter(|prefix| prefix.eq_ignore_ascii_case("application/"))
        .and_then(|_| typ.get(12..))
        .unwrap_or(typ);
    bare.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE)
}

/// The JOSE header as a JSON object, read without trusting anything in it.
fn parse_header(token: &str) -> Result<Map<String, Value>, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let bytes = B64.decode(header).map_err(|_| TokenError::Malformed)?;
    let header: Map<String, Value> =
        serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    // RFC 7515 §4.1.11: we understand no extension, so any `crit` is refused.
    if header.contains_key("crit") {
        return Err(TokenError::Malformed);
    }
    Ok(header)
}

/// The claim checks of [`KeyRing::verify`] after the signature: `iss`, `aud`,
/// then `exp` and `nbf` against `now` with at most 60 s leeway. Also re-run on
/// every use of a remembered verification ([`crate::token::ActiveKeys::verify`]).
pub(crate) fn check_claims(
    claims: &AccessClaims,
    settings: &TokenSettings,
    now: OffsetDateTime,
) -> Result<(), TokenError> {
    if claims.iss != settings.issuer {
        return Err(TokenError::WrongIssuer);
    }
    if claims.aud != settings.audience {
        return Err(TokenError::WrongAudience);
    }
    let leeway = settings.effective_leeway_seconds();
    let now = now.unix_timestamp();
    if now > claims.exp.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    if now.saturating_add(leeway) < claims.nbf {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}
