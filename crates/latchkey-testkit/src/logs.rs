//! One process-wide capture of latchkey's log lines (JSON, debug level) for the
//! tests that assert what is logged.
//!
//! It is installed by the first [`crate::app::TestApp`] start, before any server
//! serves, so no request can begin under no subscriber (its span disabled)
//! and log under the capture (its lines without the request id).

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Log lines captured from every server in this test process.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The capture, installing it as the global subscriber on first use (only
/// latchkey's own targets, to keep memory bounded).
pub fn captured() -> Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            use tracing_subscriber::layer::SubscriberExt;
            let captured = Captured::default();
            let writer = captured.clone();
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(move || writer.clone());
            let subscriber = tracing_subscriber::registry().with(layer).with(
                tracing_subscriber::filter::filter_fn(|meta| {
                    meta.target().starts_with("latchkey") && *meta.level() <= tracing::Level::DEBUG
                }),
            );
            // Another global subscriber (none in our tests) would keep its place.
            let _ = tracing::subscriber::set_global_default(subscriber);
            captured
        })
        .clone()
}
