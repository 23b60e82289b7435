//! Request extractors that turn bad input into the right problem.

pub mod json;

pub use json::ApiJson;
