//! Brute-force defence on login: failures are counted per identifier (the
//! HMAC of the normalized email, whether or not an account has it); after
//! `threshold` consecutive failures the identifier is locked, each new lock
//! twice as long as the last (capped); a success resets everything.
//!
//! Guarantees: a locked identifier is refused *before* any password check, with
//! the same answer for known and unknown emails (no enumeration, no hashing
//! work for the attacker to spend); locks, unlocks and refused attempts on
//! existing accounts are security events; the owner is mailed on each lock.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::account::{normalize_email, User};
use crate::audit::EventKind;

use super::{AuthError, ClientContext};

/// Lockout settings.
#[derive(Clone)]
pub struct LockoutPolicy {
    /// Consecutive failures that lock (0: no lockout).
    pub threshold: u32,
    /// Length of the first lock.
    pub base: Duration,
    /// Longest lock.
    pub cap: Duration,
    /// Keys the identifier HMAC (the server's HMAC key).
    pub key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for LockoutPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockoutPolicy")
            .field("threshold", &self.threshold)
            .field("base", &self.base)
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            threshold: 5,
            base: Duration::minutes(15),
            cap: Duration::hours(24),
            key: Zeroizing::new(Vec::new()),
        }
    }
}

impl LockoutPolicy {
    /// How long the lock after `previous_locks` earlier locks lasts:
    /// `base * 2^previous_locks`, at most `cap`.
    pub fn lock_length(&self, previous_locks: u32) -> Duration {
        let factor = 2_i32
            .checked_pow(previous_locks.min(30))
            .unwrap_or(i32::MAX);
        self.base
            .checked_mul(factor)
            .map_or(self.cap, |d| d.min(self.cap))
    }

    fn mac(&self, label: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(label);
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    /// A new device token for `email` (OWASP "device cookies"): a random nonce
    /// and an HMAC binding it to the address, `nonce.mac` in base64url. A
    /// browser holding one has signed in to that account before.
    pub fn device_token(&self, email: &str) -> String {
        use base64::Engine;
        use rand::RngCore;
        let mut nonce = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let email = normalize_email(email);
        let mac = self.mac(b"latchkey device v1\0", &[email.as_bytes(), &nonce]);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}", b64.encode(nonce), b64.encode(mac))
    }

    /// The lockout key of a valid device token for `email` (its own failure
    /// count, apart from the address's); `None` when the token is malformed,
    /// forged or issued for another address. Compared in constant time.
    pub fn device_key(&self, email: &str, token: &str) -> Option<[u8; 32]> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (nonce, mac) = token.split_once('.')?;
        if nonce.len() > 32 || mac.len() > 64 {
            return None;
        }
        let nonce = b64.decode(nonce).ok()?;
        let mac = b64.decode(mac).ok()?;
        let email = normalize_email(email);
        let expected = self.mac(b"latchkey device v1\0", &[email.as_bytes(), &nonce]);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&expected[..], &mac[..])) {
            return None;
        }
        Some(self.mac(b"latchkey lockout device v1\0", &[&nonce]))
    }

    /// The lockout key of passwordless sign-in with one registered passkey
    /// (its credential id): phishing-resistant sign-in has its own counter,
    /// which password guesses never touch.
    pub fn passkey_key(&self, credential_id: &[u8]) -> [u8; 32] {
        self.mac(b"latchkey lockout passkey v1\0", &[credential_id])
    }

    /// A keyed digest of a client address, for rows that must be counted per
    /// client without storing the address.
    pub fn client_key(&self, ip: &str) -> [u8; 32] {
        self.mac(b"latchkey client v1\0", &[ip.as_bytes()])
    }

    /// The stored key of an identifier: HMAC-SHA256 of the normalized email.
    pub fn identifier_key(&self, email: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(b"latchkey lockout v1\0");
        mac.update(normalize_email(email).as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// What a security event about a sign-in for an address with no account
    /// records instead of the address: a keyed hash (hex) of its normalized
    /// form, in a domain of its own (not the lockout key). The same address
    /// always gives the same value, so failures against it can be told apart
    /// and counted; without the server's key it tells nothing about the address.
    pub fn event_identifier(&self, email: &str) -> String {
        let mac = self.mac(
            b"latchkey event identifier v1\0",
            &[normalize_email(email).as_bytes()],
        );
        crate::hex::encode(&mac[..16])
    }
}

/// Whole seconds until `until`, at least 1.
fn seconds_until(until: OffsetDateTime, now: OffsetDateTime) -> u64 {
    let micros = (until - now).whole_microseconds().max(0);
    u64::try_from(micros.div_euclid(1_000_000) + i128::from(micros % 1_000_000 != 0))
        .unwrap_or(u64::MAX)
        .max(1)
}

/// One attempt reserved on an identifier's counter before its credential is
/// checked (see [`Attempts::reserve`]). An attempt dropped before its
/// outcome was recorded (the client went away mid-check, or an error ended
/// the request) gives its count back: abandoned attempts neither lock nor
/// pile up.
pub(crate) struct Attempt {
    key: [u8; 32],
    /// This attempt's number since the last lock or success (0: lockout off).
    count: u32,
    /// Where to give the count back if no outcome is recorded, and the
    /// runner that does it.
    give_back: Option<(
        std::sync::Arc<dyn crate::ports::ThrottleStore>,
        crate::background::Background,
    )>,
    settled: std::sync::atomic::AtomicBool,
}

impl Attempt {
    /// The counter's key, when the attempt was counted (lockout on): a
    /// success clears it.
    pub(crate) fn counted_key(&self) -> Option<&[u8; 32]> {
        (self.count > 0).then_some(&self.key)
    }

    /// Its outcome is recorded (counted as a failure, given back, or cleared
    /// with the counter): nothing to give back on drop.
    pub(crate) fn settle(&self) {
        self.settled
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.count == 0 || self.settled.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let Some((store, background)) = self.give_back.take() else {
            return;
        };
        let key = self.key;
        background.spawn("release_sign_in_attempt", async move {
            if let Err(e) = store.release_throttle_attempt(&key, None).await {
                tracing::warn!(error = %e, "abandoned sign-in attempt not given back");
            }
        });
    }
}

/// Reserved attempts beyond the threshold whose previous attempt is older
/// than this are leftovers (a crash mid-check), not attempts in flight.
const IN_FLIGHT_AT_MOST: Duration = Duration::seconds(60);

/// The sign-in lockout: counters per identifier (address, device, passkey),
/// locks with their events and notices. Shared by every use case that checks
/// a credential.
#[derive(Clone)]
pub(crate) struct Attempts {
    /// The counters.
    pub store: std::sync::Arc<dyn crate::ports::ThrottleStore>,
    /// Threshold, lock lengths and the key identifiers are hashed with.
    pub policy: LockoutPolicy,
    /// Events, notices, time, background work.
    pub common: super::common::Common,
}

impl Attempts {
    /// Reserves an attempt on `key` before any credential check: one atomic
    /// write counts it, so however many guesses race, at most `threshold` are
    /// checked before the lock. Refuses (`Locked`) while a lock is in force;
    /// an attempt beyond the threshold while the earlier ones are still being
    /// checked gives its count back and is refused unchecked
    /// (`AttemptsInFlight`, retry in a second) — it locks nothing, so a burst
    /// of correct sign-ins (one account used by many clients at once) is
    /// slowed, never locked. Same work and answer for known and unknown
    /// identifiers.
    pub(crate) async fn reserve(
        &self,
        key: &[u8; 32],
        user: Option<&User>,
        client: &ClientContext,
    ) -> Result<Attempt, AuthError> {
        if self.policy.threshold == 0 {
            return Ok(Attempt {
                key: *key,
                count: 0,
                give_back: None,
                settled: std::sync::atomic::AtomicBool::new(true),
            });
        }
        let now = self.common.now();
        let throttle = self.store.reserve_throttle_attempt(key, now).await?;
        let mut locked_until = throttle.locked_until.filter(|until| *until > now);
        if locked_until.is_none() && throttle.failures > self.policy.threshold {
            let in_flight = throttle
                .previous_attempt_at
                .is_some_and(|at| now - at <= IN_FLIGHT_AT_MOST);
            if in_flight {
                self.store
                    .release_throttle_attempt(key, throttle.previous_attempt_at)
                    .await?;
                metrics::counter!("latchkey_login_attempts_total", "result" => "in_flight")
                    .increment(1);
                return Err(AuthError::AttemptsInFlight { retry_after: 1 });
            }
            // Leftovers of attempts that never ended: failures, as the
            // conservative reading; the lock ends them.
            locked_until = self
                .lock(key, throttle.lock_count, user, client, now)
                .await?;
        }
        if let Some(until) = locked_until {
            metrics::counter!("latchkey_login_attempts_total", "result" => "locked").increment(1);
            if let Some(user) = user {
                self.common
                    .event(user.id, EventKind::LoginThrottled, None, client)
                    .await;
            }
            return Err(AuthError::Locked {
                retry_after: seconds_until(until, now),
            });
        }
        Ok(Attempt {
            key: *key,
            count: throttle.failures,
            give_back: Some((
                std::sync::Arc::clone(&self.store),
                self.common.background.clone(),
            )),
            settled: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The reserved attempt was wrong: its count stays; the attempt that
    /// reaches the threshold locks the identifier (then records
    /// `account_locked` and mails the owner, if any).
    pub(crate) async fn failed(
        &self,
        attempt: &Attempt,
        user: Option<&User>,
        client: &ClientContext,
    ) -> Result<(), AuthError> {
        attempt.settle();
        if attempt.count == 0 || attempt.count < self.policy.threshold {
            return Ok(());
        }
        let now = self.common.now();
        let lock_count = self
            .store
            .throttle(&attempt.key)
            .await?
            .map_or(0, |t| t.lock_count);
        self.lock(&attempt.key, lock_count, user, client, now)
            .await?;
        Ok(())
    }

    /// The reserved attempt was right but the sign-in goes on (a second step
    /// to come, or an account that cannot sign in yet): its count is given
    /// back, so a correct password never brings a lock nearer, and failures
    /// of the second step still count.
    pub(crate) async fn released(&self, attempt: &Attempt) -> Result<(), AuthError> {
        attempt.settle();
        if attempt.count > 0 {
            self.store
                .release_throttle_attempt(&attempt.key, None)
                .await?;
        }
        Ok(())
    }

    /// Locks `key` for the length its `previous_locks` earn, unless another
    /// request did first; returns the lock in force. The winner logs it and,
    /// after the answer, records `account_locked` and mails the owner.
    async fn lock(
        &self,
        key: &[u8; 32],
        previous_locks: u32,
        user: Option<&User>,
        client: &ClientContext,
        now: OffsetDateTime,
    ) -> Result<Option<OffsetDateTime>, AuthError> {
        let until = now + self.policy.lock_length(previous_locks);
        if !self
            .store
            .lock_throttle(key, self.policy.threshold, until)
            .await?
        {
            // Another request locked it (or a success cleared it) meanwhile.
            return Ok(self
                .store
                .throttle(key)
                .await?
                .and_then(|t| t.locked_until)
                .filter(|u| *u > now));
        }
        metrics::counter!("latchkey_lockouts_total").increment(1);
        tracing::info!(until = %until, "sign-in locked after repeated failures");
        if let Some(user) = user {
            // After the answer, as for the failure count: the unknown-email
            // path has no event or notice to write.
            let (common, threshold) = (self.common.clone(), self.policy.threshold);
            let (user, client) = (user.clone(), client.clone());
            let task = async move {
                common
                    .event_at(user.id, EventKind::AccountLocked, None, &client, now)
                    .await;
                common
                    .notice(
                        common.links.notify.account_locked,
                        crate::mail::templates::Template::AccountLocked,
                        &user,
                        Some(&client),
                        minijinja::context! {
                            threshold => threshold,
                            until => super::notices::mail_time(until),
                        },
                    )
                    .await;
            };
            self.common.background.spawn("lock_notice", task);
        }
        Ok(Some(until))
    }

    /// Forgets the failures of an identifier after a successful sign-in.
    pub(crate) async fn clear(&self, key: &[u8; 32]) -> Result<(), AuthError> {
        if self.policy.threshold > 0 {
            self.store.clear_throttle(key).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_lock_doubles_up_to_the_cap() {
        let p = LockoutPolicy::default();
        assert_eq!(p.lock_length(0), Duration::minutes(15));
        assert_eq!(p.lock_length(1), Duration::minutes(30));
        assert_eq!(p.lock_length(2), Duration::hours(1));
        assert_eq!(p.lock_length(6), Duration::hours(16));
        assert_eq!(p.lock_length(7), Duration::hours(24), "capped");
        assert_eq!(p.lock_length(u32::MAX), Duration::hours(24));
    }

    #[test]
    fn identifiers_are_keyed_and_normalized() {
        let p = LockoutPolicy {
            key: Zeroizing::new(b"k1".to_vec()),
            ..LockoutPolicy::default()
        };
        assert_eq!(
            p.identifier_key(" Ada@Example.com "),
            p.identifier_key("ada@example.com")
        );
        let other = LockoutPolicy {
            key: Zeroizing::new(b"k2".to_vec()),
            ..LockoutPolicy::default()
        };
        assert_ne!(
            p.identifier_key("ada@example.com"),
            other.identifier_key("ada@example.com")
        );
    }

    #[test]
    fn device_tokens_are_bound_to_their_address_and_key() {
        let p = LockoutPolicy {
            key: Zeroizing::new(b"k1".to_vec()),
            ..LockoutPolicy::default()
        };
        let token = p.device_token("Ada@Example.com");
        let key = p.device_key("ada@example.com", &token).unwrap();
        assert_ne!(key, p.identifier_key("ada@example.com"));
        assert_ne!(p.device_token("ada@example.com"), token, "fresh nonce");
        assert!(
            p.device_key("eve@example.com", &token).is_none(),
            "other address"
        );
        let other = LockoutPolicy {
            key: Zeroizing::new(b"k2".to_vec()),
            ..LockoutPolicy::default()
        };
        assert!(
            other.device_key("ada@example.com", &token).is_none(),
            "other key"
        );
        let (nonce, mac) = token.split_once('.').unwrap();
        for bad in [
            String::new(),
            nonce.to_owned(),
            format!("{nonce}."),
            format!("{nonce}.{}", &mac[1..]),
            format!("A{}", &token[1..]),
            format!("{token}{}", "A".repeat(100)),
        ] {
            assert!(p.device_key("ada@example.com", &bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn retry_after_rounds_up() {
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_eq!(seconds_until(now + Duration::milliseconds(1500), now), 2);
        assert_eq!(seconds_until(now + Duration::seconds(900), now), 900);
        assert_eq!(seconds_until(now, now), 1);
    }
}
