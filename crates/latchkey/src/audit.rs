//! `latchkey audit verify`: walks the security events' hash chain in the
//! configured database and names the first event that breaks it.

use std::process::ExitCode;

use latchkey_server::config::Loaded;
use latchkey_server::core::audit::verify::{break_event, verify, Report};
use latchkey_server::core::clock::Clock as _;
use latchkey_server::startup::open_store;
use time::OffsetDateTime;

use crate::cli::startup_failed;

/// Exit code when the chain is broken.
const EXIT_BROKEN: u8 = 1;

/// Parses `--since` (RFC 3339, e.g. `2026-12-01T00:00:00Z`).
pub fn parse_since(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("not an RFC 3339 time ({e}), e.g. 2026-12-01T00:00:00Z"))
}

/// Runs `audit verify`: exit 0 when the chain is whole, 1 naming the first
/// broken event (or rows outside the chain, and recording an
/// `audit_chain_broken` event), 2 for a configuration problem.
pub async fn verify_chain(loaded: &Loaded, since: Option<OffsetDateTime>) -> ExitCode {
    let store = match open_store(&loaded.config).await {
        Ok(store) => store,
        Err(e) => return startup_failed(&e),
    };
    let report = verify(&*store, since).await;
    // A break is itself a critical event, appended after the last one.
    if let Some(event) = report
        .as_ref()
        .ok()
        .and_then(|r| break_event(r, latchkey_server::SystemClockHandle.now()))
    {
        if let Err(e) = store.record_event(&event).await {
            eprintln!("latchkey: audit verify: the break was not recorded: {e}");
        }
    }
    store.close().await;
    match report {
        Ok(report) => {
            for line in lines(&report) {
                if report.intact() {
                    println!("{line}");
                } else {
                    eprintln!("latchkey: {line}");
                }
            }
            if report.intact() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_BROKEN)
            }
        }
        Err(e) => {
            eprintln!("latchkey: audit verify: cannot read the chain: {e}");
            ExitCode::from(EXIT_BROKEN)
        }
    }
}

/// What to say about `report`.
fn lines(report: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    match report.broken {
        Some(b) => lines.push(match b.id {
            Some(id) => format!(
                "chain broken at event {id} (place {}): {}; {} events before it verified",
                b.seq, b.problem, report.checked
            ),
            None => format!(
                "chain broken after place {}: {}; {} events verified",
                b.seq, b.problem, report.checked
            ),
        }),
        None => lines.push(format!(
            "chain verified: {} events ({} redacted: links checked, content erased)",
            report.checked, report.redacted
        )),
    }
    if report.unchained > 0 {
        lines.push(format!(
            "{} events have no place in the chain: written under the store",
            report.unchained
        ));
    }
    lines
}
