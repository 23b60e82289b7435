//! Request extractors that turn bad input into the right problem.

pub mod auth;
pub mod json;

pub use auth::Authenticated;
pub use json::{ApiJson, OptionalJson};
