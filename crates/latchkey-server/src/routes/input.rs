//! Bounds on free-text input, defined once: lengths in characters, no control
//! characters (NUL included), and the shape of an email address.

use crate::error::FieldError;

pub use latchkey_core::account::MAX_EMAIL;
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

/// Checks that `value` (trimmed) is an address latchkey accepts: a bare
/// `local@domain` (the rules: [`latchkey_core::account::check_email`]).
pub fn check_email_shape(value: &str, field: &str, errors: &mut Vec<FieldError>) {
    use latchkey_core::account::{check_email, EmailProblem};
    match check_email(value) {
        Ok(()) => {}
        Err(EmailProblem::Empty) => push(errors, field, "required", "This field is required."),
        Err(EmailProblem::TooLong) => push(
            errors,
            field,
            "too_long",
            format!("Use at most {MAX_EMAIL} characters."),
        ),
        Err(EmailProblem::Invalid) => push(
            errors,
            field,
            "invalid_email",
            "Enter an email address like name@example.com.",
        ),
    }
}

/// Checks a display name (a person's, a passkey's): optional, at most `max`
/// characters, and no control or invisible character (zero-width, bidi
/// controls: a name must read as what it is).
pub fn check_name(field: &str, value: &str, max: usize, errors: &mut Vec<FieldError>) {
    let before = errors.len();
    check_text(field, value, max, true, errors);
    if errors.len() == before
        && value
            .chars()
            .any(|c| c != ' ' && latchkey_core::account::is_hidden_or_control(c))
    {
        push(
            errors,
            field,
            "invalid_characters",
            "Invisible and control characters are not allowed.",
        );
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
            "Victim<attacker@evil.example>",
            "ada\u{200b}@example.com",
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
        let mut errors = Vec::new();
        check_name("name", "Ada Lovelace", MAX_NAME, &mut errors);
        check_name("name", "Zoë 李", MAX_NAME, &mut errors);
        assert!(errors.is_empty());
        for hidden in [
            "Ada\u{200b}",
            "\u{202e}evil",
            "a\u{2066}b",
            "\u{feff}x",
            "x\u{200d}y",
        ] {
            check_name("name", hidden, MAX_NAME, &mut errors);
        }
        assert_eq!(errors.len(), 5);
        assert!(errors.iter().all(|e| e.code == "invalid_characters"));
    }
}

/// An account to create as an administrator typed it (API or CLI).
#[derive(Default)]
pub struct AccountInput {
    /// Address.
    pub email: String,
    /// Display name (blank: none).
    pub name: Option<String>,
    /// First password, or `None` for an invite.
    pub password: Option<zeroize::Zeroizing<String>>,
    /// Role names.
    pub roles: Vec<String>,
    /// Address verified at once.
    pub email_verified: bool,
}

/// Checks an account to create with the sign-up's shape rules (address,
/// name, password at most `max_password` characters); every problem at once
/// as `validation_failed`.
pub fn new_account(
    input: AccountInput,
    max_password: usize,
) -> Result<latchkey_core::auth::CreateAccount, crate::error::ApiError> {
    let mut errors = Vec::new();
    check_email_shape(&input.email, "email", &mut errors);
    if let Some(password) = &input.password {
        check_text("password", password, max_password, false, &mut errors);
    }
    let name = input
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    if let Some(name) = &name {
        check_name("name", name, MAX_NAME, &mut errors);
    }
    if !errors.is_empty() {
        return Err(crate::error::ApiError::Validation(errors));
    }
    Ok(latchkey_core::auth::CreateAccount {
        email: input.email,
        name,
        password: input.password,
        roles: input.roles,
        email_verified: input.email_verified,
    })
}
