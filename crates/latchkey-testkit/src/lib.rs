//! Test harness for latchkey: [`app::TestApp`] (the real server on an ephemeral
//! port), per-test databases ([`db`]), and the one store conformance suite
//! ([`conformance`]) that every backend runs, plus a real SMTP server for tests
//! ([`smtp_sink`]), a private Redis for fault tests ([`redis_server`]) and a
//! reader for the messages latchkey sends ([`mail`]).

pub mod app;
pub mod conformance;
pub mod conformance_account;
pub mod conformance_idempotency;
pub mod conformance_mail;
pub mod conformance_mfa;
pub mod conformance_roles;
pub mod conformance_sessions;
pub mod db;
pub mod logs;
pub mod mail;
pub mod redis_server;
pub mod smtp_sink;
pub mod soft_authenticator;
