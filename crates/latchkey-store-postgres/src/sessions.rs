//! `SessionStore` and `EventStore` on PostgreSQL. Under READ COMMITTED, a
//! conditional `UPDATE ... WHERE used_at IS NULL` that races another waits for it
//! and re-checks the condition, so only one spender of a token ever sees a row.

use async_trait::async_trait;
use latchkey_core::audit::{EventKind, SecurityEvent};
use latchkey_core::ports::{Aftermath, EventStore, SessionStore, StoreError, SECURITY_CHANGED};
use latchkey_core::session::{
    Device, NewSession, RefreshToken, RevokeReason, RotateOutcome, Session,
};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::{map_error, PostgresStore};

const SESSION_COLUMNS: &str = "id, user_id, created_at, last_seen_at, idle_expires_at, absolute_expires_at, \
     revoked_at, ip, user_agent, device_type, device_os, device_browser, fingerprint, remember_me, amr, cookie_mode";

fn session_from_row(row: &PgRow) -> Result<Session, StoreError> {
    let amr: String = row.try_get("amr").map_err(map_error)?;
    Ok(Session {
        id: row.try_get("id").map_err(map_error)?,
        user_id: row.try_get("user_id").map_err(map_error)?,
        created_at: row.try_get("created_at").map_err(map_error)?,
        last_seen_at: row.try_get("last_seen_at").map_err(map_error)?,
        idle_expires_at: row.try_get("idle_expires_at").map_err(map_error)?,
        absolute_expires_at: row.try_get("absolute_expires_at").map_err(map_error)?,
        revoked_at: row.try_get("revoked_at").map_err(map_error)?,
        ip: row.try_get("ip").map_err(map_error)?,
        user_agent: row.try_get("user_agent").map_err(map_error)?,
        device: Device {
            kind: row.try_get("device_type").map_err(map_error)?,
            os: row.try_get("device_os").map_err(map_error)?,
            browser: row.try_get("device_browser").map_err(map_error)?,
        },
        fingerprint: row.try_get("fingerprint").map_err(map_error)?,
        remember_me: row.try_get("remember_me").map_err(map_error)?,
        amr: amr.split_whitespace().map(str::to_owned).collect(),
        cookie_mode: row.try_get("cookie_mode").map_err(map_error)?,
    })
}

async fn insert_token(
    tx: &mut Transaction<'_, Postgres>,
    token: &RefreshToken,
    session_id: Uuid,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(token.id)
        .bind(session_id)
        .bind(&token.token_hash[..])
        .bind(token.created_at)
        .bind(token.expires_at)
        .execute(&mut **tx)
        .await
        .map_err(map_error)?;
    Ok(())
}

pub(crate) async fn revoke_ids(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[Uuid],
    reason: RevokeReason,
    now: OffsetDateTime,
) -> Result<u64, StoreError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let changed = sqlx::query("UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE id = ANY($3) AND revoked_at IS NULL")
        .bind(now)
        .bind(reason.as_str())
        .bind(ids)
        .execute(&mut **tx)
        .await
        .map_err(map_error)?
        .rows_affected();
    sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE session_id = ANY($2) AND revoked_at IS NULL")
        .bind(now)
        .bind(ids)
        .execute(&mut **tx)
        .await
        .map_err(map_error)?;
    // An email change dies with the session that asked for it.
    sqlx::query("DELETE FROM email_change_tokens WHERE session_id = ANY($1)")
        .bind(ids)
        .execute(&mut **tx)
        .await
        .map_err(map_error)?;
    Ok(changed)
}

/// Ids of the user's live sessions other than `except`, newest first, after
/// skipping the newest `skip` of them, locked for update (the skipped rows too:
/// concurrent sign-ins of one user take turns). Only the rows past a session
/// limit are returned; the partial index on live sessions serves the scan.
pub(crate) async fn live_ids(
    tx: &mut Transaction<'_, Postgres>,
    user_id: Uuid,
    except: Option<Uuid>,
    skip: u32,
    now: OffsetDateTime,
) -> Result<Vec<Uuid>, StoreError> {
    sqlx::query_scalar(
        "SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND idle_expires_at > $2 \
         AND absolute_expires_at > $2 AND id IS DISTINCT FROM $3 ORDER BY created_at DESC, id DESC \
         OFFSET $4 FOR UPDATE",
    )
    .bind(user_id)
    .bind(now)
    .bind(except)
    .bind(i64::from(skip))
    .fetch_all(&mut **tx)
    .await
    .map_err(map_error)
}

/// Appends a security event (on the pool or inside a transaction).
pub(crate) async fn insert_event<'e, E>(executor: E, e: &SecurityEvent) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    sqlx::query("INSERT INTO security_events (id, user_id, kind, created_at, session_id, ip) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(e.id)
        .bind(e.user_id)
        .bind(e.kind.as_str())
        .bind(e.created_at)
        .bind(e.session_id)
        .bind(&e.ip)
        .execute(executor)
        .await
        .map_err(map_error)?;
    Ok(())
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn create_session(
        &self,
        s: &NewSession,
        first: &RefreshToken,
        max_live: u32,
        seen_stamp: i64,
        after: &Aftermath<'_>,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.pool().begin().await.map_err(map_error)?;
        let current: Option<i64> =
            sqlx::query_scalar("SELECT security_stamp FROM users WHERE id = $1 FOR NO KEY UPDATE")
                .bind(s.user_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_error)?;
        if current != Some(seen_stamp) {
            return Err(StoreError::Conflict {
                constraint: SECURITY_CHANGED,
            });
        }
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, last_seen_at, idle_expires_at, absolute_expires_at, ip, \
             user_agent, device_type, device_os, device_browser, fingerprint, remember_me, amr, cookie_mode) \
             VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(s.id)
        .bind(s.user_id)
        .bind(s.created_at)
        .bind(s.idle_expires_at)
        .bind(s.absolute_expires_at)
        .bind(&s.ip)
        .bind(&s.user_agent)
        .bind(&s.device.kind)
        .bind(&s.device.os)
        .bind(&s.device.browser)
        .bind(&s.fingerprint)
        .bind(s.remember_me)
        .bind(s.amr.join(" "))
        .bind(s.cookie_mode)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        insert_token(&mut tx, first, s.id).await?;
        let excess = live_ids(
            &mut tx,
            s.user_id,
            Some(s.id),
            max_live.saturating_sub(1),
            s.created_at,
        )
        .await?;
        revoke_ids(&mut tx, &excess, RevokeReason::SessionLimit, s.created_at).await?;
        crate::aftermath::apply(&mut tx, s.user_id, after, s.created_at).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(excess)
    }

    async fn session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(map_error)?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn live_sessions(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND idle_expires_at > $2 \
             AND absolute_expires_at > $2 ORDER BY created_at DESC, id DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .bind(now)
            .fetch_all(self.pool())
            .await
            .map_err(map_error)?;
        rows.iter().map(session_from_row).collect()
    }

    async fn device_seen(
        &self,
        user_id: Uuid,
        fingerprint: &str,
    ) -> Result<latchkey_core::ports::DeviceSeen, StoreError> {
        let (any, same): (bool, bool) = sqlx::query_as(
            "SELECT EXISTS(SELECT 1 FROM sessions WHERE user_id = $1), \
             EXISTS(SELECT 1 FROM sessions WHERE user_id = $1 AND fingerprint = $2)",
        )
        .bind(user_id)
        .bind(fingerprint)
        .fetch_one(self.pool())
        .await
        .map_err(map_error)?;
        Ok(match (any, same) {
            (false, _) => latchkey_core::ports::DeviceSeen::FirstSignIn,
            (true, true) => latchkey_core::ports::DeviceSeen::Known,
            (true, false) => latchkey_core::ports::DeviceSeen::New,
        })
    }

    async fn rotate_refresh_token(
        &self,
        presented: &[u8; 32],
        next: &RefreshToken,
        now: OffsetDateTime,
        idle_timeout: Duration,
        grace: Duration,
    ) -> Result<RotateOutcome, StoreError> {
        let mut tx = self.pool().begin().await.map_err(map_error)?;
        // Lock order: the session row first, then its tokens — the same order as
        // every revocation. Locking the token first (the conditional UPDATE) let
        // a loser's re-check keep the token locked while it waited for the
        // session another loser held: a deadlock under concurrent reuse.
        let family: Option<Uuid> =
            sqlx::query_scalar("SELECT session_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(&presented[..])
                .fetch_optional(&mut *tx)
                .await
                .map_err(map_error)?;
        let Some(family) = family else {
            return Ok(RotateOutcome::Invalid);
        };
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1 FOR UPDATE");
        let locked = sqlx::query(&sql)
            .bind(family)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_error)?;
        let Some(locked) = locked else {
            return Ok(RotateOutcome::Invalid);
        };
        let spent: Option<Uuid> = sqlx::query_scalar(
            "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL \
             AND expires_at > $1 RETURNING session_id",
        )
        .bind(now)
        .bind(&presented[..])
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        if let Some(session_id) = spent {
            let mut session = session_from_row(&locked)?;
            if !session.is_live(now) {
                return Ok(RotateOutcome::Invalid);
            }
            // The family lives as long as its session, whatever `next` says.
            let next = RefreshToken {
                expires_at: session.absolute_expires_at,
                ..next.clone()
            };
            insert_token(&mut tx, &next, session_id).await?;
            session.last_seen_at = now;
            session.idle_expires_at = (now + idle_timeout).min(session.absolute_expires_at);
            sqlx::query(
                "UPDATE sessions SET last_seen_at = $1, idle_expires_at = $2 WHERE id = $3",
            )
            .bind(now)
            .bind(session.idle_expires_at)
            .bind(session_id)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
            tx.commit().await.map_err(map_error)?;
            return Ok(RotateOutcome::Rotated(Box::new(session)));
        }
        let row = sqlx::query(
            "SELECT t.session_id, t.used_at, t.revoked_at, s.user_id FROM refresh_tokens t \
             JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1",
        )
        .bind(&presented[..])
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        let Some(row) = row else {
            return Ok(RotateOutcome::Invalid);
        };
        let used_at: Option<OffsetDateTime> = row.try_get("used_at").map_err(map_error)?;
        let Some(used_at) = used_at else {
            return Ok(RotateOutcome::Invalid);
        };
        if now - used_at <= grace {
            let revoked: Option<OffsetDateTime> = row.try_get("revoked_at").map_err(map_error)?;
            let session = session_from_row(&locked)?;
            return Ok(if revoked.is_none() && session.is_live(now) {
                RotateOutcome::Concurrent(Box::new(session))
            } else {
                RotateOutcome::Invalid
            });
        }
        let session_id: Uuid = row.try_get("session_id").map_err(map_error)?;
        let user_id: Uuid = row.try_get("user_id").map_err(map_error)?;
        let revoked = revoke_ids(&mut tx, &[session_id], RevokeReason::RefreshReuse, now).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(if revoked > 0 {
            RotateOutcome::Reused {
                session_id,
                user_id,
            }
        } else {
            RotateOutcome::Invalid
        })
    }

    async fn revoke_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await.map_err(map_error)?;
        let live: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM sessions WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL \
             AND idle_expires_at > $3 AND absolute_expires_at > $3 FOR UPDATE",
        )
        .bind(session_id)
        .bind(user_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_error)?;
        let changed = match live {
            Some(id) => revoke_ids(&mut tx, &[id], reason, now).await?,
            None => 0,
        };
        tx.commit().await.map_err(map_error)?;
        Ok(changed > 0)
    }

    async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool().begin().await.map_err(map_error)?;
        let n = crate::aftermath::revoke_everything(&mut tx, user_id, keep, reason, now).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(n)
    }

    async fn refresh_token_session(
        &self,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
        used_within: Duration,
    ) -> Result<Option<(Session, OffsetDateTime)>, StoreError> {
        let sql = format!(
            "SELECT t.expires_at AS token_expires_at, {cols} FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
             WHERE t.token_hash = $1 AND (t.used_at IS NULL OR t.used_at > $3) AND t.revoked_at IS NULL \
             AND t.expires_at > $2",
            cols = SESSION_COLUMNS.split(", ").map(|c| format!("s.{c}")).collect::<Vec<_>>().join(", ")
        );
        let row = sqlx::query(&sql)
            .bind(&token_hash[..])
            .bind(now)
            .bind(now - used_within)
            .fetch_optional(self.pool())
            .await
            .map_err(map_error)?;
        row.map(|r| {
            Ok((
                session_from_row(&r)?,
                r.try_get("token_expires_at").map_err(map_error)?,
            ))
        })
        .transpose()
    }

    async fn deny_access_token(
        &self,
        jti: Uuid,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO denied_access_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING")
            .bind(jti)
            .bind(expires_at)
            .execute(self.pool())
            .await
            .map_err(map_error)?;
        Ok(())
    }

    async fn is_access_token_denied(&self, jti: Uuid) -> Result<bool, StoreError> {
        let found: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM denied_access_tokens WHERE jti = $1")
                .bind(jti)
                .fetch_optional(self.pool())
                .await
                .map_err(map_error)?;
        Ok(found.is_some())
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn record_event(&self, e: &SecurityEvent) -> Result<(), StoreError> {
        insert_event(self.pool(), e).await
    }

    async fn user_events(
        &self,
        user_id: Uuid,
        limit: u32,
    ) -> Result<Vec<SecurityEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, user_id, kind, created_at, session_id, ip FROM security_events WHERE user_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(map_error)?;
        rows.iter()
            .filter_map(|row| {
                let kind: String = row.try_get("kind").ok()?;
                Some((row, EventKind::parse(&kind)?))
            })
            .map(|(row, kind)| {
                Ok(SecurityEvent {
                    id: row.try_get("id").map_err(map_error)?,
                    user_id: row.try_get("user_id").map_err(map_error)?,
                    kind,
                    created_at: row.try_get("created_at").map_err(map_error)?,
                    session_id: row.try_get("session_id").map_err(map_error)?,
                    ip: row.try_get("ip").map_err(map_error)?,
                })
            })
            .collect()
    }
}
