//! Webhooks: HTTP endpoints that receive security events, at least once,
//! signed as Standard Webhooks ([`signing`]), only at addresses allowed by
//! the SSRF guard ([`target`]). Events reach them through the event table
//! itself, which is the outbox: a dispatcher reads it in commit order after
//! a stored position and queues one delivery per subscribed webhook, in the
//! transaction that moves the position ([`crate::ports::WebhookStore`]); a
//! crash between an event's commit and its delivery therefore loses
//! nothing. Deliveries are claimed by lease, retried with backoff and kept
//! as dead letters after the last attempt.

pub mod signing;
pub mod target;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::audit::{EventKind, Severity};

/// The subscription to every event type.
pub const ALL_EVENTS: &str = "*";
/// The subscription to alerts: events at or above `events.alert_min_severity`.
pub const ALERTS: &str = "alert";
/// Most entries in one webhook's `events`.
pub const MAX_SUBSCRIPTIONS: usize = 64;
/// Longest description kept.
pub const MAX_DESCRIPTION: usize = 256;
/// Most bytes of an endpoint's error kept with a delivery (never its body
/// beyond this).
pub const MAX_ERROR: usize = 1024;
/// The name of the dispatcher's position in the event table.
pub const DISPATCH_CURSOR: &str = "webhooks";

/// What a webhook receives: event types, `*`, or `alert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriptions(Vec<String>);

/// Why a webhook's `events` were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionProblem {
    /// The list is empty or longer than [`MAX_SUBSCRIPTIONS`].
    #[error("must list 1 to 64 event types")]
    Count,
    /// An entry is neither a known type, `*` nor `alert`.
    #[error("unknown event type")]
    Unknown,
}

impl Subscriptions {
    /// The subscriptions `names` asks for (duplicates dropped, order kept).
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, SubscriptionProblem> {
        if names.is_empty() || names.len() > MAX_SUBSCRIPTIONS {
            return Err(SubscriptionProblem::Count);
        }
        let mut out: Vec<String> = Vec::with_capacity(names.len());
        for name in names {
            let name = name.as_ref();
            if name != ALL_EVENTS && name != ALERTS && EventKind::parse(name).is_none() {
                return Err(SubscriptionProblem::Unknown);
            }
            if !out.iter().any(|n| n == name) {
                out.push(name.to_owned());
            }
        }
        Ok(Self(out))
    }

    /// As stored (space-separated).
    pub fn stored(&self) -> String {
        self.0.join(" ")
    }

    /// From the stored text; unknown names (from a newer release) are kept
    /// and match nothing.
    pub fn from_stored(text: &str) -> Self {
        Self(text.split_whitespace().map(str::to_owned).collect())
    }

    /// The names, in order.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// Whether an event of `kind` goes to this webhook, alerts being the
    /// events at or above `alert_min`.
    pub fn matches(&self, kind: EventKind, alert_min: Severity) -> bool {
        self.0.iter().any(|n| {
            n == ALL_EVENTS || n == kind.as_str() || (n == ALERTS && kind.severity() >= alert_min)
        })
    }
}

/// A webhook as stored.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Its id (for a static one, derived from its name).
    pub id: Uuid,
    /// The endpoint.
    pub url: String,
    /// What it receives.
    pub events: Subscriptions,
    /// The administrator's note.
    pub description: Option<String>,
    /// The current signing secret, sealed.
    pub secret_sealed: Vec<u8>,
    /// The previous secret, sealed, and until when it still signs.
    pub previous: Option<(Vec<u8>, OffsetDateTime)>,
    /// `Some(name)` for an endpoint of `[[webhooks.endpoints]]`.
    pub static_name: Option<String>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// Events placed at or before this place are not for it (they were
    /// committed before it existed).
    pub after_seq: i64,
}

/// A webhook to create (or, for a static one, to keep in line).
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// Its id.
    pub id: Uuid,
    /// The endpoint, checked.
    pub url: String,
    /// What it receives.
    pub events: Subscriptions,
    /// The administrator's note.
    pub description: Option<String>,
    /// The signing secret, sealed.
    pub secret_sealed: Vec<u8>,
    /// A previous secret, sealed, still signing until then (static only).
    pub previous: Option<(Vec<u8>, OffsetDateTime)>,
    /// `Some(name)` for a static endpoint.
    pub static_name: Option<String>,
    /// Now.
    pub created_at: OffsetDateTime,
}

/// One delivery to attempt, as claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    /// The delivery's id (a dead letter's id, once dead).
    pub id: Uuid,
    /// To which webhook.
    pub webhook_id: Uuid,
    /// Which event.
    pub event_id: Uuid,
    /// Attempts made, this one included.
    pub attempts: u32,
}

/// A delivery queued by the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// A fresh id.
    pub id: Uuid,
    /// To which webhook.
    pub webhook_id: Uuid,
    /// Which event, and its type.
    pub event_id: Uuid,
    /// The event's type.
    pub kind: EventKind,
    /// Due now.
    pub created_at: OffsetDateTime,
}

/// A delivery that failed its last attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id.
    pub id: Uuid,
    /// The event it carried.
    pub event_id: Uuid,
    /// The webhook it was for.
    pub webhook_id: Uuid,
    /// The event's type.
    pub kind: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last failure (at most [`MAX_ERROR`] bytes).
    pub last_error: Option<String>,
    /// When it became a dead letter.
    pub failed_at: OffsetDateTime,
}

/// The id of the static endpoint `name`: the same on every node and start.
pub fn static_id(name: &str) -> Uuid {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("latchkey static webhook\0{name}"));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// `text` cut to at most [`MAX_ERROR`] bytes, at a character boundary.
pub fn bounded_error(text: &str) -> String {
    let mut end = text.len().min(MAX_ERROR);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_match_their_types_everything_or_alerts() {
        let s = Subscriptions::parse(&["login_failed", "alert", "login_failed"]).unwrap();
        assert_eq!(s.names(), ["login_failed", "alert"]);
        assert!(s.matches(EventKind::LoginFailed, Severity::Critical));
        assert!(s.matches(EventKind::RefreshReuseDetected, Severity::Critical));
        assert!(!s.matches(EventKind::AccountLocked, Severity::Critical));
        assert!(s.matches(EventKind::AccountLocked, Severity::Warning));
        assert!(Subscriptions::parse(&["*"])
            .unwrap()
            .matches(EventKind::LoggedOut, Severity::Critical));
        assert_eq!(Subscriptions::from_stored(&s.stored()), s);
        assert_eq!(
            Subscriptions::parse::<&str>(&[]).unwrap_err(),
            SubscriptionProblem::Count
        );
        assert_eq!(
            Subscriptions::parse(&["nope"]).unwrap_err(),
            SubscriptionProblem::Unknown
        );
        let many: Vec<String> = (0..65).map(|_| "*".to_owned()).collect();
        assert_eq!(
            Subscriptions::parse(&many).unwrap_err(),
            SubscriptionProblem::Count
        );
    }

    #[test]
    fn static_ids_are_stable_and_distinct_and_errors_are_bounded() {
        assert_eq!(static_id("billing"), static_id("billing"));
        assert_ne!(static_id("billing"), static_id("crm"));
        let long = "é".repeat(1000);
        let cut = bounded_error(&long);
        assert!(cut.len() <= MAX_ERROR && long.starts_with(&cut));
    }
}

/// Why one delivery attempt failed: what the endpoint answered (its status
/// and at most [`MAX_ERROR`] bytes of its body) or why it could not be
/// reached. Kept with the delivery, shown to administrators.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeliveryFailure(pub String);

/// Posts one signed event to an endpoint (the HTTP adapter). `Ok` only for a
/// 2xx answer within the attempt's deadline.
#[async_trait::async_trait]
pub trait WebhookSender: Send + Sync {
    /// POSTs `body` (JSON) with `headers` to `url`.
    async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<(), DeliveryFailure>;
}
