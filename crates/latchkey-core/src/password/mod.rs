//! Password hashing: Argon2id (PHC strings) on a bounded blocking pool, with
//! transparent upgrade of imported bcrypt hashes and of outdated Argon2 parameters,
//! and a dummy verification so unknown accounts cost the same as wrong passwords.
//!
//! Passwords are never logged or `Debug`-printed; the copies made for hashing are
//! zeroized. Stored hashes are treated as hostile input (see `stored`).

mod breach;
mod hasher;
mod memory;
mod policy;
mod stored;

pub use breach::{
    sha1_hex, BreachCheckUnavailable, BreachChecker, BreachClientError, BreachList, BreachListError,
};
pub use hasher::{Argon2Params, PasswordError, PasswordHasher, Verification};
pub use policy::{normalize, PasswordPolicy, PasswordProblem, PolicyContext};

/// Default minimum length, in characters after NFKC.
pub const MIN_LENGTH: usize = 12;
/// Default maximum length (bounds hashing and strength-estimation work).
pub const MAX_LENGTH: usize = 128;
