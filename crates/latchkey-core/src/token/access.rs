//! Access-token claims, signing and strict verification.

use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::keys::{Algorithm, SigningKey};
use super::TokenError;

/// The `typ` header of every access token (RFC 9068).
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";
/// Tokens longer than this are refused before parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Most leeway ever applied to `exp`/`nbf`.
pub const MAX_LEEWAY: Duration = Duration::seconds(60);

/// Claims of an access token (API.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// User id.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Expiry (unix seconds).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Token id (UUIDv7), for the denylist.
    pub jti: String,
    /// Session id.
    pub sid: String,
    /// When the session authenticated.
    pub auth_time: i64,
    /// Authentication methods (`pwd`, `otp`, ...).
    pub amr: Vec<String>,
    /// Roles.
    pub roles: Vec<String>,
}

/// Issuer, audience, lifetime and leeway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: String,
    /// Lifetime of a new token.
    pub ttl: Duration,
    /// Clock-skew allowance for `exp`/`nbf`, capped at [`MAX_LEEWAY`].
    pub leeway: Duration,
}

/// Claims for a new token: fresh `jti`, `iat = nbf = now`, `exp = now + ttl`.
pub fn new_claims(
    settings: &TokenSettings,
    now: OffsetDateTime,
    sub: Uuid,
    sid: Uuid,
    auth_time: OffsetDateTime,
    amr: Vec<String>,
    roles: Vec<String>,
) -> AccessClaims {
    let now_s = now.unix_timestamp();
    AccessClaims {
        iss: settings.issuer.clone(),
        sub: sub.to_string(),
        aud: settings.audience.clone(),
        exp: (now + settings.ttl).unix_timestamp(),
        iat: now_s,
        nbf: now_s,
        jti: Uuid::now_v7().to_string(),
        sid: sid.to_string(),
        auth_time: auth_time.unix_timestamp(),
        amr,
        roles,
    }
}

/// The current signing key and the previous keys still inside their verification
/// window. All keys share one algorithm.
#[derive(Debug)]
pub struct KeyRing {
    current: SigningKey,
    previous: Vec<SigningKey>,
}

impl KeyRing {
    /// A ring; every key must use the current key's algorithm.
    pub fn new(current: SigningKey, previous: Vec<SigningKey>) -> Result<Self, TokenError> {
        if previous
            .iter()
            .any(|k| k.algorithm() != current.algorithm())
        {
            return Err(TokenError::Key);
        }
        Ok(Self { current, previous })
    }

    /// The algorithm of every key in the ring.
    pub fn algorithm(&self) -> Algorithm {
        self.current.algorithm()
    }

    /// The `kid` new tokens are signed with.
    pub fn current_kid(&self) -> &str {
        self.current.kid()
    }

    fn key(&self, kid: &str) -> Option<&SigningKey> {
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.kid() == kid)
    }

    /// Signs with the current key; the header is exactly `alg`, `typ`, `kid`.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        let mut header = Header::new(self.current.algorithm().jwt());
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(self.current.kid().to_owned());
        jsonwebtoken::encode(&header, claims, &self.current.encoding).map_err(|_| TokenError::Key)
    }

    /// Verifies a token: size, `typ`, `alg` equal to OUR algorithm (never taken
    /// from the token), `kid` one of ours (`jku`/`x5u`/`jwk`/`x5c` headers are never
    /// used), signature, then `iss`, `aud`, `exp` and `nbf` against `now` with at
    /// most 60 s leeway. Reads no clock.
    pub fn verify(
        &self,
        token: &str,
        settings: &TokenSettings,
        now: OffsetDateTime,
    ) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_LEN || token.split('.').count() != 3 {
            return Err(TokenError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::WrongAlgorithm)?;
        if !header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE))
        {
            return Err(TokenError::WrongType);
        }
        let alg = self.algorithm();
        if header.alg != alg.jwt() {
            return Err(TokenError::WrongAlgorithm);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.key(kid))
            .ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(alg.jwt());
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed,
            })?;
        let claims = data.claims;
        if claims.iss != settings.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if claims.aud != settings.audience {
            return Err(TokenError::WrongAudience);
        }
        let leeway = settings
            .leeway
            .clamp(Duration::ZERO, MAX_LEEWAY)
            .whole_seconds();
        let now = now.unix_timestamp();
        if now > claims.exp.saturating_add(leeway) {
            return Err(TokenError::Expired);
        }
        if now.saturating_add(leeway) < claims.nbf {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }

    /// The public JWK set: current key first, then previous keys.
    pub fn jwks(&self) -> Value {
        let keys: Vec<&Value> = std::iter::once(&self.current)
            .chain(&self.previous)
            .map(SigningKey::public_jwk)
            .collect();
        json!({ "keys": keys })
    }
}
