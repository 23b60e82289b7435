//! `ApiJson<T>`: JSON in (validated) and out (`application/json; charset=utf-8`).
//!
//! Input rules from API.md: the body must be `application/json` (else `415`), valid
//! UTF-8 JSON (else `400 malformed_request`), match the type exactly — unknown
//! fields are rejected when `T` uses `deny_unknown_fields` — and fit the body limit
//! (else `413`). The detail names the offending field but never echoes a value.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ApiError;

/// Content type of every JSON success body.
pub const JSON_UTF8: &str = "application/json; charset=utf-8";

/// A JSON body, in either direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(map_rejection(&rejection)),
        }
    }
}

fn map_rejection(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::MalformedRequest("The body is not valid JSON.".into())
        }
        JsonRejection::JsonDataError(e) => {
            ApiError::MalformedRequest(describe_data_error(&e.body_text()))
        }
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::PayloadTooLarge
        }
        _ => ApiError::MalformedRequest("The body could not be read.".into()),
    }
}

/// Names the unknown or missing field from serde's message; any other data error
/// gets a generic text (serde's would quote the client's value).
fn describe_data_error(text: &str) -> String {
    for (marker, what) in [
        ("unknown field `", "Unknown field"),
        ("missing field `", "Missing field"),
    ] {
        if let Some(start) = text.find(marker) {
            let rest = &text[start + marker.len()..];
            if let Some(end) = rest.find('`') {
                let name: String = rest[..end]
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(64)
                    .collect();
                return format!("{what} `{name}`.");
            }
        }
    }
    "A field has the wrong type or value.".into()
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => {
                let mut response = body.into_response();
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
                response
            }
            Err(e) => ApiError::Internal(Box::new(e)).into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::describe_data_error;

    #[test]
    fn data_errors_name_fields_but_never_values() {
        let unknown = "Failed to deserialize the JSON body into the target type: unknown field `pasword`, expected one of `email`, `password` at line 1 column 10";
        assert_eq!(describe_data_error(unknown), "Unknown field `pasword`.");
        let missing = "Failed to deserialize: missing field `email` at line 1 column 2";
        assert_eq!(describe_data_error(missing), "Missing field `email`.");
        let typed = "invalid type: string \"hunter2-secret\", expected u32 at line 1 column 20";
        assert!(!describe_data_error(typed).contains("hunter2"));
    }
}

/// Like [`ApiJson`], but an empty body (with or without a content type) gives
/// `T::default()`, for endpoints whose body is entirely optional.
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionalJson<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let empty = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0")
            || (req.headers().get(header::CONTENT_LENGTH).is_none()
                && req.headers().get(header::TRANSFER_ENCODING).is_none());
        if empty {
            return Ok(Self(T::default()));
        }
        ApiJson::<T>::from_request(req, state)
            .await
            .map(|ApiJson(v)| Self(v))
    }
}
