//! Email addresses: which ones are accepted, and the normalized form that
//! carries the uniqueness constraint.
//!
//! Guarantees:
//! - only a bare addr-spec is accepted (`local@domain`): no display name,
//!   quotes, angle brackets, comments, spaces or `,;()[]\:`; the local part is a
//!   dot-atom (RFC 5322 `atext`, or any other Unicode letter as RFC 6531
//!   allows), the domain a host name that UTS 46 (IDNA) accepts with the STD3
//!   rules; so the address shown, stored and mailed is exactly the one that
//!   receives the mail;
//! - no format character (Unicode category Cf: zero-width spaces and joiners,
//!   bidirectional controls, soft hyphens, BOM), control or whitespace
//!   character anywhere: an address cannot look like another one;
//! - spellings of one mailbox normalize alike: NFKC, then full Unicode case
//!   folding, for the local part; UTS 46 to ASCII (lower-case, Punycode) for
//!   the domain. `ADA@Example.com`, `ａｄａ@example.com` and
//!   `ada@EXAMPLE.COM` are one account; `Straße@x.de` and `strasse@x.de` too.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Longest address, in characters (RFC 5321's path limit).
pub const MAX_EMAIL: usize = 254;
/// Longest local part, in characters (RFC 5321).
pub const MAX_LOCAL_PART: usize = 64;

/// Why an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailProblem {
    /// Empty after trimming.
    Empty,
    /// Over [`MAX_EMAIL`] characters.
    TooLong,
    /// Not a bare `local@domain` address.
    Invalid,
}

/// A character no address (or display name) may contain: controls,
/// whitespace, and format characters (zero-width, bidi controls, BOM, soft
/// hyphen: invisible, or reordering what is shown).
pub fn is_hidden_or_control(c: char) -> bool {
    c.is_control() || c.is_whitespace() || c.general_category() == GeneralCategory::Format
}

/// RFC 5322 `atext`, plus every non-ASCII character (RFC 6531) that is not
/// hidden or a control.
fn is_local_char(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
    } else {
        !is_hidden_or_control(c)
    }
}

/// Checks that `raw` (trimmed) is an address latchkey accepts (see the module
/// documentation).
pub fn check_email(raw: &str) -> Result<(), EmailProblem> {
    let email = raw.trim();
    if email.is_empty() {
        return Err(EmailProblem::Empty);
    }
    if email.chars().count() > MAX_EMAIL {
        return Err(EmailProblem::TooLong);
    }
    if email.chars().any(is_hidden_or_control) {
        return Err(EmailProblem::Invalid);
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err(EmailProblem::Invalid);
    };
    let local_ok = (1..=MAX_LOCAL_PART).contains(&local.chars().count())
        && local.split('.').all(|atom| !atom.is_empty())
        && local.chars().all(|c| c == '.' || is_local_char(c));
    if !local_ok || ascii_domain(domain).is_none() {
        return Err(EmailProblem::Invalid);
    }
    Ok(())
}

/// The domain as UTS 46 writes it for DNS (lower-case ASCII, Punycode), when
/// it is a host name of at least two labels, without a trailing dot.
fn ascii_domain(domain: &str) -> Option<String> {
    if domain.is_empty() || domain.ends_with('.') || domain.contains('@') {
        return None;
    }
    let ascii = idna::domain_to_ascii_strict(domain).ok()?;
    let labels_ok = ascii.split('.').count() >= 2 && ascii.split('.').all(|l| !l.is_empty());
    labels_ok.then_some(ascii)
}

/// The normalized form of an address: the local part in NFKC with full
/// Unicode case folding, the domain as UTS 46 writes it for DNS. Two
/// spellings of one mailbox give one string. Defined for any input (an
/// address [`check_email`] refuses normalizes by the same rules, so lookups
/// with it simply find nothing).
pub fn normalize_email(raw: &str) -> String {
    let email = raw.trim();
    match email.rsplit_once('@') {
        Some((local, domain)) => {
            let domain = ascii_domain(domain).map_or_else(|| fold(domain), Cow::Owned);
            format!("{}@{domain}", fold(local))
        }
        None => fold(email).into_owned(),
    }
}

/// NFKC, case folding, NFKC again (case folding can undo a composition).
fn fold(text: &str) -> Cow<'_, str> {
    if text
        .bytes()
        .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
    {
        return Cow::Borrowed(text);
    }
    let nfkc: String = text.nfkc().collect();
    let folded = icu_casemap::CaseMapper::new().fold_string(&nfkc);
    Cow::Owned(folded.nfkc().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_mailbox_normalize_alike() {
        let one = normalize_email("ada@example.com");
        for spelling in [
            "  Ada@Example.COM\t",
            "ADA@EXAMPLE.COM",
            "ａｄａ@example.com",
            "ada@ＥＸＡＭＰＬＥ.com",
            "Ada@example.Com",
        ] {
            assert_eq!(normalize_email(spelling), one, "{spelling:?}");
        }
        assert_eq!(
            normalize_email("Straße@Example.de"),
            normalize_email("STRASSE@example.de")
        );
        assert_eq!(
            normalize_email("ÉLODIE@exemple.fr"),
            normalize_email("e\u{301}lodie@exemple.fr"),
            "composed and decomposed"
        );
        assert_eq!(
            normalize_email("用户@例子.广告"),
            normalize_email("用户@xn--fsqu00a.xn--4rr70v"),
            "Unicode and Punycode domains"
        );
        assert!(normalize_email("a@例子.广告").ends_with("@xn--fsqu00a.xn--4rr70v"));
    }

    #[test]
    fn only_bare_addresses_are_accepted() {
        for ok in [
            "a@example.com",
            " Alice@Example.COM ",
            "用户@例子.广告",
            "x+tag@sub.example.co.uk",
            "o'brien@example.ie",
            "first.last@example.com",
            "a@xn--fsqu00a.xn--4rr70v",
        ] {
            assert_eq!(check_email(ok), Ok(()), "{ok}");
        }
        for bad in [
            "plain",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@b..com",
            "@b.com",
            "a@.b.com",
            "a@b.com.",
            "a\u{0}@b.com",
            "a@-b.com",
            "Victim<attacker@evil.example>",
            "\"Victim\" <attacker@evil.example>",
            "<attacker@evil.example>",
            "attacker@evil.example (Victim)",
            "\"quoted\"@example.com",
            "a,b@example.com",
            "a;b@example.com",
            "a(b)@example.com",
            "a[b]@example.com",
            "a\\b@example.com",
            "a:b@example.com",
            ".a@example.com",
            "a.@example.com",
            "a..b@example.com",
            "a@exa_mple.com",
            "ada\u{200b}@example.com",
            "ada@exam\u{200d}ple.com",
            "ada@exam\u{ad}ple.com",
            "\u{202e}moc.elpmaxe@ada",
            "ada\u{2066}@example.com",
            "\u{feff}ada@example.com",
            "ada@example.com\u{200e}",
        ] {
            assert_eq!(check_email(bad), Err(EmailProblem::Invalid), "{bad:?}");
        }
        assert_eq!(check_email("  "), Err(EmailProblem::Empty));
        assert_eq!(
            check_email(&format!("{}@example.com", "a".repeat(250))),
            Err(EmailProblem::TooLong)
        );
        assert_eq!(
            check_email(&format!("{}@example.com", "a".repeat(65))),
            Err(EmailProblem::Invalid),
            "local part over 64"
        );
    }
}
