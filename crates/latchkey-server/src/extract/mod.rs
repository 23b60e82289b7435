//! Request extractors that turn bad input into the right problem.

pub mod auth;
pub mod json;
pub mod query;

pub use auth::Authenticated;
pub use json::{ApiJson, OptionalJson};
pub use query::ApiQuery;
