//! Email normalization: the form that carries the uniqueness constraint.

/// The normalized form of an address: trimmed and lower-cased (Unicode-aware), so
/// `Alice@Example.COM ` and `alice@example.com` are the same account.
///
/// Syntax checking is a separate rule; this only defines equality.
pub fn normalize_email(raw: &str) -> String {
    raw.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::normalize_email;

    #[test]
    fn case_and_surrounding_space_do_not_matter() {
        assert_eq!(
            normalize_email("  Alice@Example.COM\t"),
            "alice@example.com"
        );
        assert_eq!(normalize_email("ÉLODIE@exemple.fr"), "élodie@exemple.fr");
    }
}
