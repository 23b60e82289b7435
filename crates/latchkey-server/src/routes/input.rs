//! Bounds on free-text input, defined once: lengths in characters, no control
//! characters (NUL included), and the shape of an email address.

use crate::error::FieldError;

/// Longest email address (RFC 5321 path limit).
pub const MAX_EMAIL: usize = 254;
/// Longest display name.
pub const MAX_NAME: usize = 100;

fn push(errors: &mut Vec<FieldError>, field: &str, code: &str, message: impl Into<String>) {
    errors.push(FieldError {
        field: field.to_owned(),
        code: code.to_owned(),
        message: message.into(),
    });
}

/// Checks a text field: required (unless `optional_empty`), at most `max`
/// characters, no control characters.
pub fn check_text(
    field: &str,
    value: &str,
    max: usize,
    optional_empty: bool,
    errors: &mut Vec<FieldError>,
) {
    if value.is_empty() && !optional_empty {
        push(errors, field, "required", "This field is required.");
    } else if value.chars().count() > max {
        push(
            errors,
            field,
            "too_long",
            format!("Use at most {max} characters."),
        );
    } else if value.chars().any(char::is_control) {
        push(
            errors,
            field,
            "invalid_characters",
            "Control characters are not allowed.",
        );
    }
}

/// Checks that `value` (trimmed) looks like `local@domain.tld`: bounded, no
/// spaces or control characters, exactly one `@`, a dotted domain.
pub fn check_email_shape(value: &str, field: &str, errors: &mut Vec<FieldError>) {
    let email = value.trim();
    let invalid = || FieldError {
        field: field.to_owned(),
        code: "invalid_email".to_owned(),
        message: "Enter an email address like name@example.com.".to_owned(),
    };
    if email.is_empty() {
        push(errors, field, "required", "This field is required.");
        return;
    }
    if email.chars().count() > MAX_EMAIL {
        push(
            errors,
            field,
            "too_long",
            format!("Use at most {MAX_EMAIL} characters."),
        );
        return;
    }
    if email.chars().any(|c| c.is_control() || c.is_whitespace()) {
        errors.push(invalid());
        return;
    }
    let Some((local, domain)) = email.split_once('@') else {
        errors.push(invalid());
        return;
    };
    let domain_ok = !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && domain
            .split('.')
            .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
    if local.is_empty() || local.chars().count() > 64 || !domain_ok {
        errors.push(invalid());
    }
}

/// The email of a password or email flow (verification resend, forgot
/// password): well-formed, and within the per-address `password` rate limit
/// (counted whether or not an account has it).
pub async fn flow_address(
    state: &crate::state::AppState,
    email: &str,
    slot: &crate::ratelimit::SlotExtension,
) -> Result<(), crate::error::ApiError> {
    let mut errors = Vec::new();
    check_email_shape(email, "email", &mut errors);
    if !errors.is_empty() {
        return Err(crate::error::ApiError::Validation(errors));
    }
    state
        .rate_limits
        .check(
            crate::config::RouteGroup::Password,
            crate::config::LimitKey::Identifier,
            &latchkey_core::account::normalize_email(email),
            crate::ratelimit::slot_of(slot),
        )
        .await
}

/// The per-user `password` rate limit of a signed-in account flow (password
/// or email change): the user is the identifier.
pub async fn flow_user(
    state: &crate::state::AppState,
    user_id: uuid::Uuid,
    slot: &crate::ratelimit::SlotExtension,
) -> Result<(), crate::error::ApiError> {
    state
        .rate_limits
        .check(
            crate::config::RouteGroup::Password,
            crate::config::LimitKey::Identifier,
            &user_id.to_string(),
            crate::ratelimit::slot_of(slot),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(value: &str) -> Vec<String> {
        let mut errors = Vec::new();
        check_email_shape(value, "email", &mut errors);
        errors.into_iter().map(|e| e.code).collect()
    }

    #[test]
    fn emails() {
        for ok in [
            "a@example.com",
            " Alice@Example.COM ",
            "用户@例子.广告",
            "x+tag@sub.example.co.uk",
        ] {
            assert!(codes(ok).is_empty(), "{ok}");
        }
        for bad in [
            "",
            "plain",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@b..com",
            "@b.com",
            "a@.b.com",
            "a\u{0}@b.com",
            "a@-b.com",
        ] {
            assert!(!codes(bad).is_empty(), "{bad:?}");
        }
        assert_eq!(
            codes(&format!("{}@example.com", "a".repeat(250))),
            ["too_long"]
        );
    }

    #[test]
    fn text_fields() {
        let mut errors = Vec::new();
        check_text("name", "ok name", MAX_NAME, true, &mut errors);
        check_text("name", "", MAX_NAME, true, &mut errors);
        assert!(errors.is_empty());
        check_text("name", &"n".repeat(101), MAX_NAME, true, &mut errors);
        check_text("name", "nul\u{0}byte", MAX_NAME, true, &mut errors);
        check_text("password", "", 128, false, &mut errors);
        let codes: Vec<&str> = errors.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(codes, ["too_long", "invalid_characters", "required"]);
    }
}
