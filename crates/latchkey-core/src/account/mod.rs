//! Accounts: the user record and the rules that shape it.

mod email;
mod renormalize;
mod user;

pub use email::{
    check_email, is_hidden_or_control, normalize_email, EmailProblem, MAX_EMAIL, MAX_LOCAL_PART,
};
pub use renormalize::{renormalize_emails, Renormalized};
pub use user::{NewUser, User};
