//! Password hashing: Argon2id (PHC strings) on a bounded blocking pool, with
//! transparent upgrade of imported bcrypt hashes and of outdated Argon2 parameters,
//! and a dummy verification so unknown accounts cost the same as wrong passwords.

mod hasher;
mod length;

pub use hasher::{Argon2Params, PasswordError, PasswordHasher, Verification};
pub use length::{check_length, LengthError, MAX_LENGTH, MIN_LENGTH};
