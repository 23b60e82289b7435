//! Adapters to services outside the process (Redis now; SMTP and HTTP clients
//! later), each behind a port from `latchkey-core`.

pub mod breach_api;
pub mod mail_file;
pub mod ratelimit_redis;
pub mod redis;
