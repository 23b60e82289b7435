//! `ApiQuery<T>`: the query string as `T`.

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The query string parsed as `T`. One that does not parse (an unknown
/// parameter where `T` denies them, a number out of range, a malformed
/// escape) is `400 malformed_request`, the same answer on every route.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(value) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::MalformedRequest("The query string is not valid.".into()))?;
        Ok(Self(value))
    }
}
