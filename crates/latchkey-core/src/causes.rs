//! An error with every cause under it, for logs: `Display` of the error,
//! then of each `source()` in turn, joined by `": "` (a `StoreError` says
//! "database error"; what the database said is its source).

/// `e` and its causes, outermost first.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_cause_is_named_outermost_first() {
        let inner = std::io::Error::other("disk on fire");
        let outer = crate::ports::StoreError::Internal(Box::new(inner));
        assert_eq!(super::chain(&outer), "database error: disk on fire");
    }
}
