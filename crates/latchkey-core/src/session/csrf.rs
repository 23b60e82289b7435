//! CSRF tokens for cookie-authenticated browsers (signed double-submit).
//!
//! The token is `HMAC-SHA256(key, label || session id)`, base64url: bound to
//! one session, stable for its whole life (so several tabs agree), useless for
//! any other session, and impossible to compute without the server's HMAC key.
//! A page reads it from the readable CSRF cookie (or the login response) and
//! echoes it in `X-CSRF-Token`; a cross-site attacker can make the browser send
//! the cookies but can neither read them nor compute the token.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// Domain separation: the HMAC key is shared with other uses (device tokens).
const LABEL: &[u8] = b"latchkey csrf v1\0";

/// Length of a CSRF token in characters (32 bytes, base64url without padding).
pub const CSRF_TOKEN_LEN: usize = 43;

fn mac(key: &[u8], session_id: Uuid) -> Hmac<Sha256> {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(LABEL);
    mac.update(session_id.as_bytes());
    mac
}

/// The CSRF token of `session_id` under `key`.
pub fn csrf_token(key: &[u8], session_id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(mac(key, session_id).finalize().into_bytes())
}

/// Whether `presented` is the CSRF token of `session_id`, compared in
/// constant time (a wrong length or bad encoding is simply `false`).
pub fn verify_csrf_token(key: &[u8], session_id: Uuid, presented: &str) -> bool {
    if presented.len() != CSRF_TOKEN_LEN {
        return false;
    }
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(presented) else {
        return false;
    };
    mac(key, session_id).verify_slice(&bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_token_verifies_only_for_its_session_and_key() {
        let sid = Uuid::now_v7();
        let token = csrf_token(KEY, sid);
        assert_eq!(token.len(), CSRF_TOKEN_LEN);
        assert_eq!(token, csrf_token(KEY, sid), "stable for the session");
        assert!(verify_csrf_token(KEY, sid, &token));
        assert!(!verify_csrf_token(KEY, Uuid::now_v7(), &token));
        assert!(!verify_csrf_token(b"another key", sid, &token));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let sid = Uuid::now_v7();
        let token = csrf_token(KEY, sid);
        for bad in [
            String::new(),
            token[..42].to_owned(),
            format!("{token}A"),
            "!".repeat(43),
            token.to_uppercase(),
            "A".repeat(43),
        ] {
            assert!(!verify_csrf_token(KEY, sid, &bad), "{bad:?}");
        }
    }

    #[test]
    fn the_token_is_a_known_hmac() {
        // HMAC-SHA256(KEY, "latchkey csrf v1\0" || nil uuid), computed independently.
        let expected = {
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(KEY).unwrap();
            m.update(b"latchkey csrf v1\0");
            m.update(&[0u8; 16]);
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(m.finalize().into_bytes())
        };
        assert_eq!(csrf_token(KEY, Uuid::nil()), expected);
    }
}
