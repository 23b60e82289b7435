//! `ApiJson<T>`: JSON in (validated) and out (`application/json; charset=utf-8`).
//!
//! Input rules from API.md: the body must be `application/json` with no
//! parameter but `charset=utf-8` (else `415`: no `+json` types, no other
//! charset), valid UTF-8 JSON (else `400 malformed_request`), match the type
//! exactly — unknown fields are rejected when `T` uses `deny_unknown_fields` —
//! and fit the body limit (else `413`). The body is always read to its end,
//! whatever its framing (`Content-Length`, chunked, or HTTP/2 DATA frames with
//! no length). The detail names the offending field but never echoes a value.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
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
        check_content_type(req.headers())?;
        let body = read_body(req, state).await?;
        parse(&body).map(Self)
    }
}

/// `415` unless the content type is `application/json`, optionally with
/// `charset=utf-8` (both case-insensitive), and nothing else.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::UnsupportedMediaType)?;
    let mut parts = value.split(';').map(str::trim);
    let essence = parts.next().unwrap_or_default();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    for param in parts {
        let utf8 = param.split_once('=').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("charset")
                && value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        });
        if !utf8 {
            return Err(ApiError::UnsupportedMediaType);
        }
    }
    Ok(())
}

/// The whole body, read to its end whatever the framing; `413` beyond the
/// body limit (enforced by the limit layer while reading).
pub(crate) async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::MalformedRequest("The body could not be read.".into())
        }
    })
}

/// The body as `T`: `400 malformed_request` for invalid JSON (UTF-8
/// included), wrong types, and missing or unknown fields.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => {
            ApiError::MalformedRequest(describe_data_error(&e.to_string()))
        }
        _ => ApiError::MalformedRequest("The body is not valid JSON.".into()),
    })
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

    /// Reads the body to its end first (an HTTP/2 body without
    /// `Content-Length` is a body like any other), then: empty gives
    /// `T::default()`; anything else follows the rules of [`ApiJson`].
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let headers = req.headers().clone();
        let body = read_body(req, state).await?;
        if body.is_empty() {
            return Ok(Self(T::default()));
        }
        check_content_type(&headers)?;
        parse(&body).map(Self)
    }
}
