//! Password hashing: Argon2id (PHC strings) on a bounded blocking pool, with
//! transparent upgrade of imported bcrypt hashes and of outdated Argon2 parameters,
//! and a dummy verification so unknown accounts cost the same as wrong passwords.
//!
//! Passwords are never logged or `Debug`-printed; the copies made for hashing are
//! zeroized. Stored hashes are treated as hostile input (see `stored`).

mod hasher;
mod length;
mod stored;

pub use hasher::{Argon2Params, PasswordError, PasswordHasher, Verification};
pub use length::{check_length, LengthError, MAX_LENGTH, MIN_LENGTH};
