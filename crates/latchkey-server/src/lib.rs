//! latchkey's HTTP server: configuration, routes, extractors, middleware,
//! problem+json, OpenAPI, and [`Application`], the server as a value that the binary
//! and the tests start the same way.

pub mod auth_setup;
pub mod cache_bus;
pub mod cleanup_task;
pub mod client;
pub mod config;
pub mod cookies;
pub mod error;
pub mod event_delivery;
pub mod extract;
pub mod import;
pub mod keys;
pub mod keys_admin;
pub mod mail_worker;
pub mod middleware;
pub mod passes;
pub mod ratelimit;
pub mod reencrypt;
pub mod request_id;
pub mod routes;
pub mod serve;
pub mod startup;
pub mod state;
pub mod summary;
pub mod supervise;
pub mod telemetry;

/// The domain layer, for the operator CLI (which calls its services directly).
pub use latchkey_core as core;
pub use latchkey_core::clock::SystemClock as SystemClockHandle;
pub use latchkey_core::maintenance::Cleaner;
pub use startup::{Application, BuildOptions, StartupError};
pub use state::AppState;

/// The current time from the system clock (for command-line tools that have no
/// injected clock).
pub fn wall_clock_now() -> time::OffsetDateTime {
    use latchkey_core::clock::Clock;
    latchkey_core::clock::SystemClock.now()
}
