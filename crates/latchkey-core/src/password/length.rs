//! Password length rules, counted in Unicode scalar values.

/// Default minimum length.
pub const MIN_LENGTH: usize = 12;
/// Default maximum length (bounds hashing work and storage).
pub const MAX_LENGTH: usize = 128;

/// Why a password's length is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LengthError {
    /// Fewer than `min` characters.
    TooShort {
        /// The minimum.
        min: usize,
    },
    /// More than `max` characters.
    TooLong {
        /// The maximum.
        max: usize,
    },
}

/// Checks `min <= chars <= max`, counting characters (not bytes), so a password
/// of multi-byte characters is measured as the user sees it.
pub fn check_length(password: &str, min: usize, max: usize) -> Result<(), LengthError> {
    let n = password.chars().count();
    if n < min {
        Err(LengthError::TooShort { min })
    } else if n > max {
        Err(LengthError::TooLong { max })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_count_characters() {
        assert_eq!(
            check_length(&"a".repeat(11), 12, 128),
            Err(LengthError::TooShort { min: 12 })
        );
        assert_eq!(check_length(&"a".repeat(12), 12, 128), Ok(()));
        assert_eq!(check_length(&"a".repeat(128), 12, 128), Ok(()));
        assert_eq!(
            check_length(&"a".repeat(129), 12, 128),
            Err(LengthError::TooLong { max: 128 })
        );
        assert_eq!(
            check_length(&"é".repeat(12), 12, 128),
            Ok(()),
            "24 bytes, 12 characters"
        );
        assert_eq!(
            check_length(&"😀".repeat(129), 12, 128),
            Err(LengthError::TooLong { max: 128 })
        );
    }
}
