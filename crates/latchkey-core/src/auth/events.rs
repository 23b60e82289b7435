//! Reading the security events: the caller's own (`GET /v1/me/events`) and
//! the audit trail (`GET /v1/admin/audit`, `audit:read`), newest first, in
//! pages whose cursors are bound to the listing, the caller's filters and
//! (for one's own events) the caller.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::access::Permission;
use crate::audit::{Category, EventKind, SecurityEvent, Severity};
use crate::page::{self, Cursors};
use crate::ports::{EventFilter, EventStore};

use super::admin::{cursor_position, Admin, Caller, Page};
use super::{AuthError, Principal, Sessions};

/// The listing name of one's own events, in cursors.
const OWN_EVENTS: &str = "me-events";
/// The listing name of the audit trail, in cursors.
const AUDIT: &str = "audit";
/// Longest filter value looked at.
const MAX_FILTER: usize = 64;

/// The audit trail's filters, as the client gave them (checked here; empty
/// counts as absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditQuery<'a> {
    /// Events about this account id.
    pub user_id: Option<&'a str>,
    /// Of this type.
    pub kind: Option<&'a str>,
    /// Of this category.
    pub category: Option<&'a str>,
    /// Of exactly this severity.
    pub severity: Option<&'a str>,
    /// Recorded at or after this time (RFC 3339).
    pub since: Option<&'a str>,
    /// Recorded before this time (RFC 3339).
    pub until: Option<&'a str>,
}

impl Admin {
    /// A page of the audit trail (`audit:read`): every account's events (and
    /// the redacted ones of deleted accounts), newest first, narrowed by
    /// `query`. A bad filter, `cursor` or `limit` → `BadQuery` naming it; a
    /// cursor is only valid with the filters it was made for.
    pub async fn audit(
        &self,
        caller: Caller<'_>,
        query: &AuditQuery<'_>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<SecurityEvent>, AuthError> {
        self.authorize(caller, Permission::AuditRead).await?;
        let [user_id, kind, category, severity, since, until] = [
            ("user_id", query.user_id),
            ("type", query.kind),
            ("category", query.category),
            ("severity", query.severity),
            ("since", query.since),
            ("until", query.until),
        ]
        .map(|(name, value)| given(name, value));
        let filter = EventFilter {
            user_id: user_id?
                .map(|v| Uuid::try_parse(v).map_err(|_| AuthError::BadQuery("user_id")))
                .transpose()?,
            kinds: kinds(kind?, category?, severity?)?,
            since: time("since", since?)?,
            until: time("until", until?)?,
        };
        let key = [
            query.user_id,
            query.kind,
            query.category,
            query.severity,
            query.since,
            query.until,
        ]
        .map(|v| v.unwrap_or(""))
        .join("\0");
        events_page(
            &*self.common.store,
            &self.cursors,
            (AUDIT, &key),
            &filter,
            cursor,
            limit,
        )
        .await
    }
}

impl Sessions {
    /// A page of the signed-in user's own events, newest first, of one type
    /// when `kind` is given (else all). Bad `kind`, `cursor` or `limit` →
    /// `BadQuery`; a cursor is only valid for this user and this type.
    pub async fn own_events(
        &self,
        principal: &Principal,
        kind: Option<&str>,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Page<SecurityEvent>, AuthError> {
        let kind = given("type", kind)?;
        let filter = EventFilter {
            kinds: kinds(kind, None, None)?,
            ..EventFilter::of_user(principal.user_id)
        };
        let key = format!("{}\0{}", principal.user_id, kind.unwrap_or(""));
        events_page(
            &*self.store,
            &self.cursors,
            (OWN_EVENTS, &key),
            &filter,
            cursor,
            limit,
        )
        .await
    }
}

/// A filter value: absent when empty; `BadQuery(name)` when longer than
/// [`MAX_FILTER`] or holding control characters.
fn given<'a>(name: &'static str, value: Option<&'a str>) -> Result<Option<&'a str>, AuthError> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) if v.len() > MAX_FILTER || v.chars().any(char::is_control) => {
            Err(AuthError::BadQuery(name))
        }
        Some(v) => Ok(Some(v)),
    }
}

/// The kinds a type, category and severity filter leave (`None`: no such
/// filter, every kind); an unknown name → `BadQuery` naming its parameter.
fn kinds(
    kind: Option<&str>,
    category: Option<&str>,
    severity: Option<&str>,
) -> Result<Option<Vec<EventKind>>, AuthError> {
    if kind.is_none() && category.is_none() && severity.is_none() {
        return Ok(None);
    }
    let kind = kind
        .map(|v| EventKind::parse(v).ok_or(AuthError::BadQuery("type")))
        .transpose()?;
    let category = category
        .map(|v| Category::parse(v).ok_or(AuthError::BadQuery("category")))
        .transpose()?;
    let severity = severity
        .map(|v| Severity::parse(v).ok_or(AuthError::BadQuery("severity")))
        .transpose()?;
    Ok(Some(
        EventKind::ALL
            .into_iter()
            .filter(|k| {
                kind.is_none_or(|t| t == *k)
                    && category.is_none_or(|c| k.category() == c)
                    && severity.is_none_or(|s| k.severity() == s)
            })
            .collect(),
    ))
}

/// An RFC 3339 time filter; `BadQuery(name)` for anything else.
fn time(name: &'static str, value: Option<&str>) -> Result<Option<OffsetDateTime>, AuthError> {
    value
        .map(|v| {
            OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .map_err(|_| AuthError::BadQuery(name))
        })
        .transpose()
}

/// One page of `filter`'s events in `listing` (its name and the key its
/// cursors are bound to).
async fn events_page(
    store: &dyn EventStore,
    cursors: &Cursors,
    (listing, key): (&str, &str),
    filter: &EventFilter,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> Result<Page<SecurityEvent>, AuthError> {
    let limit = page::limit(limit).ok_or(AuthError::BadQuery("limit"))?;
    let before = cursor_position(cursors, listing, key, cursor)?;
    let rows = store.events(filter, before, limit + 1).await?;
    Ok(Page::from_overfetch(rows, limit, |e| {
        cursors.make(listing, key, e.id)
    }))
}
