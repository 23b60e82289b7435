//! Accounts: the user record and the rules that shape it.

mod email;
mod user;

pub use email::normalize_email;
pub use user::{NewUser, User};
