//! Verify latchkey access tokens locally with the JWKS (jsonwebtoken).
//!
//! One `Verifier` per process: it keeps the key set and fetches it again when
//! a token names a `kid` it does not hold (after a key rotation), at most once
//! per `refetch_every` (30 s), so forged kids cannot make it hammer the server.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// The claims this resource server uses.
#[derive(Debug, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub sid: String,
    pub roles: Vec<String>,
    pub exp: i64,
}

pub type Error = Box<dyn std::error::Error + Send + Sync>;

pub struct Verifier {
    issuer: String,
    audience: String,
    http: reqwest::Client,
    keys: Mutex<(JwkSet, Option<Instant>)>,
    pub refetch_every: Duration,
}

impl Verifier {
    /// `issuer`: latchkey's public_url (or tokens.issuer); `audience`: tokens.audience.
    pub fn new(issuer: &str, audience: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            http: reqwest::Client::new(),
            keys: Mutex::new((JwkSet { keys: Vec::new() }, None)),
            refetch_every: Duration::from_secs(30),
        }
    }

    pub async fn verify(&self, token: &str) -> Result<Claims, Error> {
        let header = decode_header(token)?;
        // RFC 9068: access tokens are typed; a refresh token or another JWT is not one.
        let typ = header
            .typ
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if typ != "at+jwt" && typ != "application/at+jwt" {
            return Err("not an access token".into());
        }
        let kid = header.kid.ok_or("no kid")?;
        let key = if let Some(key) = self.key(&kid)? {
            key
        } else {
            self.refetch().await?;
            self.key(&kid)?.ok_or("unknown signing key")?
        };
        let mut validation = Validation::new(Algorithm::EdDSA); // pin the algorithm
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 60; // seconds of clock difference tolerated
        Ok(decode::<Claims>(token, &key, &validation)?.claims)
    }

    fn key(&self, kid: &str) -> Result<Option<DecodingKey>, Error> {
        let keys = self.keys.lock().map_err(|_| "poisoned")?;
        match keys.0.find(kid) {
            Some(jwk) => Ok(Some(DecodingKey::from_jwk(jwk)?)),
            None => Ok(None),
        }
    }

    async fn refetch(&self) -> Result<(), Error> {
        if let Some(at) = self.keys.lock().map_err(|_| "poisoned")?.1 {
            if at.elapsed() < self.refetch_every {
                return Ok(());
            }
        }
        let url = format!("{}/.well-known/jwks.json", self.issuer);
        let set: JwkSet = self
            .http
            .get(url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        *self.keys.lock().map_err(|_| "poisoned")? = (set, Some(Instant::now()));
        Ok(())
    }
}
