//! The hash chain over security events: tamper evidence under the store.
//!
//! Every event gets a place `seq` (1, 2, 3, … with no gap) and two hashes:
//! `content = SHA-256(canonical(seq, event))` and
//! `hash = SHA-256(previous hash ‖ content)`, the first event's previous hash
//! being [`GENESIS`]. The store assigns places and hashes when the event's
//! transaction commits, holding the chain head (one row) for that moment only,
//! so the chain is one line across every node and every transaction.
//!
//! Guarantees, checked by [`Verifier`]: changing any stored field of an event
//! breaks its `content`; deleting an event leaves a gap in `seq`; moving one
//! (another `seq`) breaks its content and the next event's link; rewriting a
//! whole tail consistently needs the chain head too, which the verifier
//! compares with the last event. Redacting an event (erasure of an account's
//! personal data) keeps its `content` and `hash`: the chain still verifies
//! its links, and the event shows as redacted rather than as tampered.
//!
//! The canonical form is unambiguous: a version tag, then each field in a
//! fixed order, every text length-prefixed and every optional field tagged
//! present or absent; times in microseconds (what every store keeps). A field
//! added later is appended only when present, so earlier events keep their
//! hashes.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::SecurityEvent;

/// A hash in the chain.
pub type Hash = [u8; 32];

/// The previous hash of the first event.
pub const GENESIS: Hash = [0; 32];

/// The end of the chain as the store keeps it: the last place given and its
/// hash (`0` and [`GENESIS`] before the first event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The last `seq`.
    pub seq: i64,
    /// The last event's `hash`.
    pub hash: Hash,
}

impl Head {
    /// The head of an empty chain.
    pub const EMPTY: Self = Self {
        seq: 0,
        hash: GENESIS,
    };
}

/// An event's place in the chain, as stored with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Its place.
    pub seq: i64,
    /// SHA-256 of its canonical form at that place.
    pub content: Hash,
    /// SHA-256 of the previous hash and `content`.
    pub hash: Hash,
}

impl Link {
    /// The chain head right after this event.
    pub fn head(&self) -> Head {
        Head {
            seq: self.seq,
            hash: self.hash,
        }
    }
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&u32::try_from(text.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

fn put_optional_text(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        None => out.push(0),
        Some(text) => {
            out.push(1);
            put_text(out, text);
        }
    }
}

fn put_optional_id(out: &mut Vec<u8>, id: Option<Uuid>) {
    match id {
        None => out.push(0),
        Some(id) => {
            out.push(1);
            out.extend_from_slice(id.as_bytes());
        }
    }
}

/// The content hash of `event` at place `seq` (see the module docs).
pub fn content_hash(seq: i64, event: &SecurityEvent) -> Hash {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"latchkey event v1\0");
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(event.id.as_bytes());
    put_optional_id(&mut out, event.user_id);
    put_text(&mut out, event.kind.as_str());
    let micros = i64::try_from(event.created_at.unix_timestamp_nanos().div_euclid(1_000))
        .unwrap_or(i64::MAX);
    out.extend_from_slice(&micros.to_be_bytes());
    put_optional_id(&mut out, event.session_id);
    put_optional_text(&mut out, event.ip.as_deref());
    put_optional_text(&mut out, event.user_agent.as_deref());
    put_optional_id(&mut out, event.actor_id);
    put_optional_text(&mut out, event.details.as_deref());
    Sha256::digest(&out).into()
}

/// The hash that links `content` to the event before it.
pub fn link_hash(previous: &Hash, content: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(previous);
    h.update(content);
    h.finalize().into()
}

/// The places and hashes of `events`, in order, after `head`, and the new head.
pub fn seal(head: Head, events: &[&SecurityEvent]) -> (Vec<Link>, Head) {
    let mut head = head;
    let links = events
        .iter()
        .map(|event| {
            let seq = head.seq + 1;
            let content = content_hash(seq, event);
            let hash = link_hash(&head.hash, &content);
            head = Head { seq, hash };
            Link { seq, content, hash }
        })
        .collect();
    (links, head)
}

/// What is wrong at an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    /// The place is not the next one: the events in between are missing (or
    /// this one was moved).
    Gap {
        /// The place expected here.
        expected: i64,
    },
    /// The stored fields do not give the stored content hash: the event was
    /// changed (or moved).
    Content,
    /// The stored hash does not follow from the previous one: an event before
    /// it was changed, removed or moved.
    Link,
    /// The chain head names a place or hash that the last event does not
    /// have: events after it were removed, or the tail was rewritten.
    Head,
}

impl std::fmt::Display for Break {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Gap { expected } => {
                write!(f, "expected place {expected}: events are missing or moved")
            }
            Self::Content => f.write_str("its fields do not match its hash: changed or moved"),
            Self::Link => f.write_str("its link to the previous event is wrong"),
            Self::Head => f.write_str("the chain head does not end at this event"),
        }
    }
}

/// One stored event as the verifier reads it.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The event's fields.
    pub event: SecurityEvent,
    /// Its place and hashes.
    pub link: Link,
    /// Whether its personal fields were erased (content no longer checkable).
    pub redacted: bool,
}

/// Walks the chain in `seq` order, event by event.
#[derive(Debug, Clone)]
pub struct Verifier {
    previous: Head,
    checked: u64,
    redacted: u64,
}

impl Verifier {
    /// A walk from the start of the chain.
    pub fn new() -> Self {
        Self::after(Head::EMPTY)
    }

    /// A walk that starts after `head` (an event whose hash is trusted).
    pub fn after(head: Head) -> Self {
        Self {
            previous: head,
            checked: 0,
            redacted: 0,
        }
    }

    /// Checks the next stored event.
    pub fn check(&mut self, stored: &Stored) -> Result<(), Break> {
        let expected = self.previous.seq + 1;
        if stored.link.seq != expected {
            return Err(Break::Gap { expected });
        }
        if stored.redacted {
            self.redacted += 1;
        } else if content_hash(stored.link.seq, &stored.event) != stored.link.content {
            return Err(Break::Content);
        }
        if link_hash(&self.previous.hash, &stored.link.content) != stored.link.hash {
            return Err(Break::Link);
        }
        self.previous = stored.link.head();
        self.checked += 1;
        Ok(())
    }

    /// Checks the stored chain head against the last event walked.
    pub fn finish(&self, head: Head) -> Result<(), Break> {
        if head == self.previous {
            Ok(())
        } else {
            Err(Break::Head)
        }
    }

    /// Events checked so far.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// Of those, redacted ones (links checked, content not).
    pub fn redacted(&self) -> u64 {
        self.redacted
    }
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::EventKind;
    use time::macros::datetime;

    fn event(n: u8) -> SecurityEvent {
        SecurityEvent {
            id: Uuid::from_bytes([n; 16]),
            user_id: Some(Uuid::from_bytes([9; 16])),
            kind: EventKind::LoginSucceeded,
            created_at: datetime!(2026-12-04 12:00:00.123456 UTC),
            session_id: None,
            ip: Some("192.0.2.1".into()),
            user_agent: None,
            actor_id: None,
            details: None,
        }
    }

    fn stored(events: &[SecurityEvent]) -> (Vec<Stored>, Head) {
        let refs: Vec<&SecurityEvent> = events.iter().collect();
        let (links, head) = seal(Head::EMPTY, &refs);
        let stored = events
            .iter()
            .zip(links)
            .map(|(event, link)| Stored {
                event: event.clone(),
                link,
                redacted: false,
            })
            .collect();
        (stored, head)
    }

    fn verify(chain: &[Stored], head: Head) -> Result<u64, (usize, Break)> {
        let mut v = Verifier::new();
        for (i, s) in chain.iter().enumerate() {
            v.check(s).map_err(|b| (i, b))?;
        }
        v.finish(head).map_err(|b| (chain.len(), b))?;
        Ok(v.checked())
    }

    #[test]
    fn a_sealed_chain_verifies_and_each_tampering_names_its_event() {
        let events: Vec<_> = (1..=4).map(event).collect();
        let (chain, head) = stored(&events);
        assert_eq!(verify(&chain, head), Ok(4));

        let mut edited = chain.clone();
        edited[1].event.ip = Some("198.51.100.7".into());
        assert_eq!(verify(&edited, head), Err((1, Break::Content)));

        let mut deleted = chain.clone();
        deleted.remove(2);
        assert_eq!(verify(&deleted, head), Err((2, Break::Gap { expected: 3 })));

        // Swapping the places of two events.
        let mut moved = chain.clone();
        let (a, b) = (moved[1].link.seq, moved[2].link.seq);
        moved[1].link.seq = b;
        moved[2].link.seq = a;
        moved.swap(1, 2);
        assert_eq!(verify(&moved, head), Err((1, Break::Content)));

        // The last event removed: only the head tells.
        let mut truncated = chain.clone();
        truncated.pop();
        assert_eq!(verify(&truncated, head), Err((3, Break::Head)));

        // A forged hash that matches forged content still breaks the link.
        let mut forged = chain.clone();
        forged[1].event.ip = None;
        forged[1].link.content = content_hash(2, &forged[1].event);
        assert_eq!(verify(&forged, head), Err((1, Break::Link)));
    }

    #[test]
    fn a_redacted_event_keeps_the_chain_whole() {
        let events: Vec<_> = (1..=3).map(event).collect();
        let (mut chain, head) = stored(&events);
        chain[1].event.ip = None;
        chain[1].event.user_id = None;
        chain[1].redacted = true;
        let mut v = Verifier::new();
        for s in &chain {
            v.check(s).unwrap();
        }
        v.finish(head).unwrap();
        assert_eq!((v.checked(), v.redacted()), (3, 1));
    }

    #[test]
    fn the_canonical_form_tells_fields_apart() {
        let mut a = event(1);
        let mut b = event(1);
        a.ip = Some("ab".into());
        a.user_agent = Some("c".into());
        b.ip = Some("a".into());
        b.user_agent = Some("bc".into());
        assert_ne!(content_hash(1, &a), content_hash(1, &b));
        let mut none = event(1);
        none.ip = None;
        let mut empty = event(1);
        empty.ip = Some(String::new());
        assert_ne!(content_hash(1, &none), content_hash(1, &empty));
        assert_ne!(content_hash(1, &a), content_hash(2, &a), "the place counts");
    }
}
