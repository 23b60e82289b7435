//! HOTP (RFC 4226) and TOTP (RFC 6238) with SHA-1, 6 digits and 30-second
//! steps: what every authenticator app speaks.
//!
//! Guarantees: codes are compared in constant time; a code is checked only
//! against the current step and one step either side; the caller stores the
//! accepted step so the same code (or an older one) is never accepted again.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Seconds per time step.
pub const STEP_SECONDS: i64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Steps accepted either side of the current one (clock drift).
pub const WINDOW: i64 = 1;
/// Seed length in bytes (160 bits, RFC 4226's recommendation).
pub const SECRET_LEN: usize = 20;

/// A new random seed.
pub fn new_secret() -> Zeroizing<Vec<u8>> {
    let mut secret = Zeroizing::new(vec![0u8; SECRET_LEN]);
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

/// The HOTP value of `counter` with `digits` digits (RFC 4226 section 5.3).
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    binary % 10u32.pow(digits)
}

/// The time step containing `unix_seconds`.
pub fn step_at(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

/// The 6-digit code of `step`, zero-padded.
pub fn code_at_step(secret: &[u8], step: i64) -> String {
    let counter = u64::try_from(step).unwrap_or(0);
    format!(
        "{:0width$}",
        hotp(secret, counter, DIGITS),
        width = DIGITS as usize
    )
}

/// Whether `code` is exactly six ASCII digits (anything else is never checked).
pub fn well_formed(code: &str) -> bool {
    code.len() == DIGITS as usize && code.bytes().all(|b| b.is_ascii_digit())
}

/// The step whose code equals `code` within ±[`WINDOW`] of `now_step` and after
/// `last_step`, if any. Every candidate is computed and compared in constant
/// time, so timing does not reveal which step matched.
pub fn matching_step(
    secret: &[u8],
    code: &str,
    now_step: i64,
    last_step: Option<i64>,
) -> Option<i64> {
    if !well_formed(code) {
        return None;
    }
    let mut found = None;
    for step in (now_step - WINDOW)..=(now_step + WINDOW) {
        let candidate = code_at_step(secret, step);
        let equal: bool = candidate.as_bytes().ct_eq(code.as_bytes()).into();
        let fresh = last_step.is_none_or(|last| step > last);
        if equal && fresh && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// The `otpauth://` URI authenticator apps import (Key Uri Format): label
/// `issuer:account`, with the issuer repeated as a parameter.
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> String {
    let label = format!("{}:{}", encode_component(issuer), encode_component(account));
    format!(
        "otpauth://totp/{label}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        super::base32::encode(secret),
        encode_component(issuer)
    )
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode_component(text: &str) -> String {
    use std::fmt::Write;
    text.bytes()
        .fold(String::with_capacity(text.len()), |mut out, b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "%{b:02X}");
            }
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc4226_appendix_d() {
        let expected = [
            755_224, 287_082, 359_152, 969_429, 338_314, 254_676, 287_922, 162_583, 399_871,
            520_489,
        ];
        for (counter, value) in expected.iter().enumerate() {
            assert_eq!(
                hotp(RFC_SECRET, counter as u64, 6),
                *value,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn rfc6238_appendix_b_sha1() {
        for (time, code) in [
            (59_i64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            let step = u64::try_from(step_at(time)).unwrap();
            assert_eq!(
                format!("{:08}", hotp(RFC_SECRET, step, 8)),
                code,
                "T = {time}"
            );
        }
    }

    #[test]
    fn window_replay_and_shape() {
        let now = step_at(1_234_567_890);
        let code = code_at_step(RFC_SECRET, now);
        assert_eq!(matching_step(RFC_SECRET, &code, now, None), Some(now));
        // One step of drift either way is accepted, two are not.
        assert_eq!(matching_step(RFC_SECRET, &code, now + 1, None), Some(now));
        assert_eq!(matching_step(RFC_SECRET, &code, now - 1, None), Some(now));
        assert_eq!(matching_step(RFC_SECRET, &code, now + 2, None), None);
        // A step at or before the last accepted one is a replay.
        assert_eq!(matching_step(RFC_SECRET, &code, now, Some(now)), None);
        assert_eq!(matching_step(RFC_SECRET, &code, now, Some(now + 1)), None);
        let previous = code_at_step(RFC_SECRET, now - 1);
        assert_eq!(
            matching_step(RFC_SECRET, &previous, now, Some(now - 1)),
            None
        );
        for bad in ["", "12345", "1234567", "12345a", " 123456", "１２３４５６"] {
            assert!(!well_formed(bad), "{bad:?}");
            assert_eq!(matching_step(RFC_SECRET, bad, now, None), None);
        }
    }

    #[test]
    fn otpauth_uri_escapes_the_label() {
        let uri = otpauth_uri(b"foobar", "Acme Auth", "ada@example.com");
        assert_eq!(
            uri,
            "otpauth://totp/Acme%20Auth:ada%40example.com?secret=MZXW6YTBOI&issuer=Acme%20Auth&algorithm=SHA1&digits=6&period=30"
        );
    }
}
