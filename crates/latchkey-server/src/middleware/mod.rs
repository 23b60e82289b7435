//! The HTTP middleware stack, outermost first:
//! request id → request log → security headers → problem guard → metrics →
//! request-line and header limits → CORS (refusals stripped) → panic catcher →
//! timeout → body limit → Idempotency-Key → router.

pub mod cors;
pub mod idempotency;
pub mod metrics;
pub mod problem_guard;
pub mod rate_limit;
pub mod request_limits;
pub mod request_log;
pub mod security_headers;
pub mod timeout;

use std::any::Any;

use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Turns a handler panic into a bare `500 internal` problem; the panic message goes
/// to the log only.
#[allow(clippy::needless_pass_by_value)] // the signature tower-http's CatchPanicLayer requires
pub fn panic_to_problem(panic: Box<dyn Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into());
    tracing::error!(panic = %message, "handler panicked");
    ApiError::Internal("handler panicked".into()).into_response()
}
