//! latchkey's integration tests: one binary, every test against a real server on an
//! ephemeral port (or a real store), each with its own database.

// Test code: failing loudly is its job (DESIGN.md denies these lints outside tests only).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::many_single_char_names
)]

mod addresses;
mod admin;
mod admin_faults;
mod audit;
mod auth;
mod breach;
mod connections;
mod cookies;
mod cors;
mod csrf;
mod email_change;
mod event_stream;
mod guides;
mod headers;
mod health;
mod http_errors;
mod idempotency;
mod introspect;
mod keys;
mod lockout;
mod metrics;
mod mfa;
mod notifications;
mod openapi;
mod outbox;
mod pages;
mod password_policy;
mod password_reset;
mod probes;
mod rate_limit;
mod recovery;
mod redis_faults;
mod request_id;
mod request_log;
mod shutdown;
mod signup;
mod smtp;
mod store;
mod support;
mod timing;
mod tls;
mod token_claims;
mod tokens_at_rest;
mod webauthn;
mod webhooks;
