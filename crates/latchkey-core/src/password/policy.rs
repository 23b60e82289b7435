//! The password policy: the rules a new password must pass (sign-up, change,
//! reset, admin creation), each failure reported with its own code and advice.
//!
//! Guarantees:
//! - passwords are NFKC-normalized before they are measured and before they are
//!   hashed ([`normalize`]), so what the user sees is what is counted, and the
//!   same password typed on two keyboards gives the same hash;
//! - length is counted in Unicode scalar values after normalization;
//! - strength is zxcvbn's score, fed the user's email, name and the service name,
//!   so a password built from them is weak; zxcvbn runs only on bounded input;
//! - composition rules (off by default, as NIST SP 800-63B advises) are available
//!   for operators who must comply with them;
//! - every failing rule is reported, not just the first.

use serde::Serialize;
use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

use super::{MAX_LENGTH, MIN_LENGTH};

/// Characters of a password that the strength estimate looks at.
pub const STRENGTH_SAMPLE: usize = 100;

/// The configured rules (also what `GET /v1/password/policy` shows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
// Independent on/off rules, each a documented setting: not a state machine.
#[allow(clippy::struct_excessive_bools)]
pub struct PasswordPolicy {
    /// Fewest characters (after NFKC).
    pub min_length: usize,
    /// Most characters (after NFKC).
    pub max_length: usize,
    /// Lowest accepted zxcvbn score, 0–4 (0: no strength rule).
    pub min_strength: u8,
    /// Require a lower-case letter.
    pub require_lowercase: bool,
    /// Require an upper-case letter.
    pub require_uppercase: bool,
    /// Require a decimal digit.
    pub require_digit: bool,
    /// Require a character that is neither a letter, a digit nor a space.
    pub require_symbol: bool,
    /// How many of the user's most recent passwords (the current one included)
    /// cannot be used again (0: no history rule).
    pub history: u32,
    /// Refuse passwords found in breach corpora.
    pub breach_check: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: MIN_LENGTH,
            max_length: MAX_LENGTH,
            min_strength: 3,
            require_lowercase: false,
            require_uppercase: false,
            require_digit: false,
            require_symbol: false,
            history: 5,
            breach_check: true,
        }
    }
}

/// One rule a password failed: a stable code (`too_short`, `weak`, ...) and
/// advice for the user. Never contains the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordProblem {
    /// Stable machine-readable reason.
    pub code: &'static str,
    /// What to do about it.
    pub message: String,
}

impl PasswordProblem {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The password is one of the user's recent ones.
    pub fn reused(history: u32) -> Self {
        Self::new(
            "reused",
            format!("Choose a password you have not used for your last {history} passwords."),
        )
    }

    /// The password appears in known breaches.
    pub fn breached() -> Self {
        Self::new(
            "breached",
            "This password appears in known data breaches; choose another one.",
        )
    }
}

/// The NFKC form of `password`: hashed and measured instead of the raw input.
pub fn normalize(password: &str) -> Zeroizing<String> {
    Zeroizing::new(password.nfkc().collect())
}

/// Words about the user and the service that a password must not lean on.
#[derive(Debug, Clone, Copy, Default)]
pub struct PolicyContext<'a> {
    /// The account's email.
    pub email: &'a str,
    /// The display name.
    pub name: Option<&'a str>,
    /// The product name.
    pub service: &'a str,
}

impl PolicyContext<'_> {
    /// The context as zxcvbn user inputs: the whole values and their parts.
    fn words(&self) -> Vec<String> {
        let mut words = Vec::new();
        let mut add = |s: &str| {
            let s = s.trim().to_lowercase();
            if s.len() >= 3 && !words.contains(&s) {
                words.push(s);
            }
        };
        add(self.email);
        if let Some((local, domain)) = self.email.split_once('@') {
            add(local);
            add(domain);
            for part in local
                .split(|c: char| !c.is_alphanumeric())
                .chain(domain.split('.'))
            {
                add(part);
            }
        }
        for value in [self.name.unwrap_or_default(), self.service] {
            add(value);
            add(&value.split_whitespace().collect::<String>());
            for part in value.split_whitespace() {
                add(part);
            }
        }
        words
    }
}

impl PasswordPolicy {
    /// Every local rule `password` fails (length, composition, strength); empty
    /// when it passes. History and breach checks need the store and the network
    /// and run elsewhere. CPU-bound (zxcvbn): call it off the async threads.
    pub fn check(&self, password: &str, context: &PolicyContext<'_>) -> Vec<PasswordProblem> {
        let password = normalize(password);
        let length = password.chars().count();
        let mut problems = Vec::new();
        if length < self.min_length {
            problems.push(PasswordProblem::new(
                "too_short",
                format!("Use at least {} characters.", self.min_length),
            ));
        }
        if length > self.max_length {
            problems.push(PasswordProblem::new(
                "too_long",
                format!("Use at most {} characters.", self.max_length),
            ));
            // Nothing else is measured on oversized input.
            return problems;
        }
        let has = |f: fn(char) -> bool| password.chars().any(f);
        for (required, present, code, message) in [
            (
                self.require_lowercase,
                has(char::is_lowercase),
                "missing_lowercase",
                "Add a lower-case letter.",
            ),
            (
                self.require_uppercase,
                has(char::is_uppercase),
                "missing_uppercase",
                "Add an upper-case letter.",
            ),
            (
                self.require_digit,
                has(|c| c.is_ascii_digit()),
                "missing_digit",
                "Add a digit.",
            ),
            (
                self.require_symbol,
                has(|c| !c.is_alphanumeric() && !c.is_whitespace()),
                "missing_symbol",
                "Add a symbol such as ! or #.",
            ),
        ] {
            if required && !present {
                problems.push(PasswordProblem::new(code, message));
            }
        }
        if self.min_strength > 0 && length > 0 {
            let words = context.words();
            let inputs: Vec<&str> = words.iter().map(String::as_str).collect();
            // Bounded work: the first STRENGTH_SAMPLE characters decide (a
            // password longer than that is not short of guesses).
            let sample: String = password.chars().take(STRENGTH_SAMPLE).collect();
            let estimate = zxcvbn::zxcvbn(&sample, &inputs);
            if u8::from(estimate.score()) < self.min_strength {
                problems.push(PasswordProblem::new("weak", weak_advice(&estimate)));
            }
        }
        problems
    }
}

/// zxcvbn's warning and first suggestion, or a generic hint.
fn weak_advice(estimate: &zxcvbn::Entropy) -> String {
    let mut advice = String::from("This password is too easy to guess.");
    if let Some(feedback) = estimate.feedback() {
        if let Some(warning) = feedback.warning() {
            advice = format!("{warning}.").replace("..", ".");
        }
        if let Some(suggestion) = feedback.suggestions().first() {
            advice.push(' ');
            advice.push_str(&suggestion.to_string());
        }
    } else {
        advice.push_str(" Add another word or two; uncommon words are better.");
    }
    advice
}

#[cfg(test)]
mod tests {
    use super::*;

    const CTX: PolicyContext<'static> = PolicyContext {
        email: "ada.lovelace@example.com",
        name: Some("Ada Lovelace"),
        service: "Acme Cloud",
    };

    fn codes(policy: &PasswordPolicy, password: &str) -> Vec<&'static str> {
        policy
            .check(password, &CTX)
            .iter()
            .map(|p| p.code)
            .collect()
    }

    #[test]
    fn a_long_uncommon_passphrase_passes_the_defaults() {
        let policy = PasswordPolicy::default();
        assert!(codes(&policy, "correct horse battery staple").is_empty());
        assert!(codes(&policy, "tangerine-orbit-calculus-41").is_empty());
    }

    #[test]
    fn length_is_counted_after_nfkc() {
        let policy = PasswordPolicy {
            min_strength: 0,
            ..PasswordPolicy::default()
        };
        assert_eq!(codes(&policy, "short"), ["too_short"]);
        assert_eq!(codes(&policy, &"x".repeat(129)), ["too_long"]);
        // "ﬃ" (one character) is "ffi" (three) under NFKC.
        assert_eq!(codes(&policy, &"\u{FB03}".repeat(4)), Vec::<&str>::new());
        assert_eq!(normalize("\u{FB03}").as_str(), "ffi");
        // Full-width digits become ASCII digits.
        assert_eq!(normalize("１２３").as_str(), "123");
    }

    #[test]
    fn common_and_personal_passwords_are_weak_with_advice() {
        let policy = PasswordPolicy::default();
        for weak in [
            "password1234",
            "qwertyuiopasdf",
            "aaaaaaaaaaaaaaaa",
            "adalovelace1815",
            "acmecloud2026!",
            "12345678901234",
        ] {
            let problems = policy.check(weak, &CTX);
            assert_eq!(
                problems.iter().map(|p| p.code).collect::<Vec<_>>(),
                ["weak"],
                "{weak}"
            );
            assert!(problems[0].message.len() > 10, "{:?}", problems[0]);
            assert!(!problems[0].message.contains(weak));
        }
    }

    #[test]
    fn the_users_own_words_lower_the_score() {
        let policy = PasswordPolicy::default();
        let ctx = PolicyContext {
            email: "zephyrquintana@example.com",
            name: Some("Zephyr Quintana"),
            service: "Acme",
        };
        let candidate = "zephyrquintana99";
        assert!(
            !policy.check(candidate, &ctx).is_empty(),
            "built from the user's name and email"
        );
    }

    #[test]
    fn composition_rules_are_off_by_default_and_each_reported() {
        let strict = PasswordPolicy {
            require_lowercase: true,
            require_uppercase: true,
            require_digit: true,
            require_symbol: true,
            min_strength: 0,
            ..PasswordPolicy::default()
        };
        assert_eq!(
            codes(&strict, "ALLUPPERCASEONLY"),
            ["missing_lowercase", "missing_digit", "missing_symbol"]
        );
        assert_eq!(codes(&strict, "Mixed-case 1234"), Vec::<&str>::new());
        assert_eq!(
            codes(&strict, "short"),
            [
                "too_short",
                "missing_uppercase",
                "missing_digit",
                "missing_symbol"
            ],
            "every failing rule is listed"
        );
    }
}
