//! Adapters to services outside the process (Redis, SMTP, the breach range API),
//! each behind a port from `latchkey-core`.

pub mod breach_api;
pub mod log_every;
pub mod mail_file;
pub mod mail_message;
pub mod mail_smtp;
pub mod ratelimit_redis;
pub mod redis;
pub mod webhook_http;
