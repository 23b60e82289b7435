//! latchkey's domain layer.
//!
//! Everything here is free of HTTP, SQL and sockets: rules and use cases talk to the
//! outside world only through the traits in [`ports`], and read time only through
//! [`clock::Clock`], so every rule can be tested with an in-memory double and a moved
//! clock.

pub mod access;
pub mod account;
pub mod audit;
pub mod auth;
pub mod background;
pub mod causes;
pub mod clock;
pub mod hex;
pub mod idempotency;
pub mod mail;
pub mod maintenance;
pub mod mfa;
pub mod page;
pub mod password;
pub mod ports;
pub mod ratelimit;
pub mod retry;
pub mod seal;
pub mod session;
pub mod time_fmt;
pub mod token;
pub mod webhooks;
