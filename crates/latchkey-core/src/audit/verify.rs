//! Walking the stored chain (`latchkey audit verify`).

use time::OffsetDateTime;
use uuid::Uuid;

use super::chain::{Break, Verifier};
use super::{EventKind, SecurityEvent};
use crate::ports::{EventStore, StoreError};

/// Events read per store call while walking.
const PAGE: u32 = 1_000;

/// The first thing wrong that a walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Broken {
    /// The place of the event where the walk stopped.
    pub seq: i64,
    /// That event's id (`None` when the chain head is wrong and no event is
    /// at fault).
    pub id: Option<Uuid>,
    /// What is wrong there.
    pub problem: Break,
}

/// What a walk of the stored chain found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Events checked (up to the first break).
    pub checked: u64,
    /// Of those, redacted ones (links checked, content not).
    pub redacted: u64,
    /// Stored events with no place in the chain (rows written under the store).
    pub unchained: u64,
    /// The first break, if any.
    pub broken: Option<Broken>,
}

impl Report {
    /// Whether the chain is whole: no break and no unchained event.
    pub fn intact(&self) -> bool {
        self.broken.is_none() && self.unchained == 0
    }
}

/// Walks the chain in `store` in place order, from its start or (with
/// `since`) from the last event recorded before `since`, whose hash it trusts.
/// Stops at the first break; a chain whose head does not end at the last event
/// is broken too (its tail was removed or rewritten).
pub async fn verify(
    store: &dyn EventStore,
    since: Option<OffsetDateTime>,
) -> Result<Report, StoreError> {
    let start = match since {
        Some(at) => store.chain_before(at).await?,
        None => super::chain::Head::EMPTY,
    };
    let mut walk = Verifier::after(start);
    let mut after = start.seq;
    let mut last = None;
    let mut broken = None;
    'walk: loop {
        let page = store.chained_events(after, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for stored in &page {
            if let Err(problem) = walk.check(stored) {
                broken = Some(Broken {
                    seq: stored.link.seq,
                    id: Some(stored.event.id),
                    problem,
                });
                break 'walk;
            }
            after = stored.link.seq;
            last = Some(stored.event.id);
        }
    }
    if broken.is_none() {
        if let Err(problem) = walk.finish(store.chain_head().await?) {
            broken = Some(Broken {
                seq: after,
                id: last,
                problem,
            });
        }
    }
    Ok(Report {
        checked: walk.checked(),
        redacted: walk.redacted(),
        unchained: store.unchained_events().await?,
        broken,
    })
}

/// The `audit_chain_broken` event (critical, about no account) that records
/// what `report` found, when the chain is not whole: the place, the event and
/// the problem of the first break, and how many rows are outside the chain.
pub fn break_event(report: &Report, at: OffsetDateTime) -> Option<SecurityEvent> {
    if report.intact() {
        return None;
    }
    let details = serde_json::json!({
        "place": report.broken.map(|b| b.seq),
        "event_id": report.broken.and_then(|b| b.id),
        "problem": report.broken.map(|b| b.problem.to_string()),
        "unchained": report.unchained,
    });
    Some(SecurityEvent {
        id: Uuid::now_v7(),
        user_id: None,
        kind: EventKind::AuditChainBroken,
        created_at: at,
        session_id: None,
        ip: None,
        user_agent: None,
        actor_id: None,
        details: Some(details.to_string()),
    })
}
