//! `SessionStore`. Under PostgreSQL's READ COMMITTED, a
//! conditional `UPDATE ... WHERE used_at IS NULL` that races another waits for
//! it and re-checks the condition, so only one spender of a token ever sees a
//! row; under SQLite the write transactions take turns.

use async_trait::async_trait;
use latchkey_core::ports::{Aftermath, DeviceSeen, SessionStore, StoreError, SECURITY_CHANGED};
use latchkey_core::session::{
    Device, NewSession, RefreshToken, RevokeReason, RotateOutcome, Session,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::backend::{Backend, Exec, Lock, Transaction};
use crate::query::{placeholders, sql};
use crate::row::{Row, RowExt};
use crate::SqlStore;

const SESSION_COLUMNS: &str = "id, user_id, created_at, last_seen_at, idle_expires_at, absolute_expires_at, \
     revoked_at, ip, user_agent, device_type, device_os, device_browser, fingerprint, remember_me, amr, cookie_mode";

fn session_from_row<R: Row>(row: &R) -> Result<Session, StoreError> {
    let amr: String = row.get("amr")?;
    Ok(Session {
        id: row.get("id")?,
        user_id: row.get("user_id")?,
        created_at: row.get("created_at")?,
        last_seen_at: row.get("last_seen_at")?,
        idle_expires_at: row.get("idle_expires_at")?,
        absolute_expires_at: row.get("absolute_expires_at")?,
        revoked_at: row.get("revoked_at")?,
        ip: row.get("ip")?,
        user_agent: row.get("user_agent")?,
        device: Device {
            kind: row.get("device_type")?,
            os: row.get("device_os")?,
            browser: row.get("device_browser")?,
        },
        fingerprint: row.get("fingerprint")?,
        remember_me: row.get("remember_me")?,
        amr: amr.split_whitespace().map(str::to_owned).collect(),
        cookie_mode: row.get("cookie_mode")?,
    })
}

async fn insert_token<E: Exec>(
    tx: &mut E,
    token: &RefreshToken,
    session_id: Uuid,
) -> Result<(), StoreError> {
    tx.execute(
        sql(
            "INSERT INTO refresh_tokens (id, session_id, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token.id)
        .bind(session_id)
        .bind(&token.token_hash)
        .bind(token.created_at)
        .bind(token.expires_at),
    )
    .await?;
    Ok(())
}

/// Sessions revoked per statement (far below both engines' argument limits).
const REVOKE_CHUNK: usize = 500;

/// Revokes sessions `ids` with their tokens and the email changes they asked
/// for, in `tx`; returns how many sessions changed.
pub(crate) async fn revoke_ids<E: Exec>(
    tx: &mut E,
    ids: &[Uuid],
    reason: RevokeReason,
    now: OffsetDateTime,
) -> Result<u64, StoreError> {
    let mut changed = 0;
    // In chunks: each engine bounds the arguments of one statement.
    for ids in ids.chunks(REVOKE_CHUNK) {
        let q = format!(
            "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE id IN ({}) AND revoked_at IS NULL",
            placeholders(3, ids.len())
        );
        changed += tx
            .execute(sql(&q).bind(now).bind(reason.as_str()).bind_all(ids))
            .await?;
        let q = format!(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE session_id IN ({}) AND revoked_at IS NULL",
            placeholders(2, ids.len())
        );
        tx.execute(sql(&q).bind(now).bind_all(ids)).await?;
        // An email change dies with the session that asked for it.
        let q = format!(
            "DELETE FROM email_change_tokens WHERE session_id IN ({})",
            placeholders(1, ids.len())
        );
        tx.execute(sql(&q).bind_all(ids)).await?;
    }
    Ok(changed)
}

/// Ids of the user's live sessions other than `except`, newest first, after
/// skipping the newest `skip` of them, locked for update (the skipped rows too:
/// concurrent sign-ins of one user take turns). Only the rows past a session
/// limit are returned; the partial index on live sessions serves the scan.
pub(crate) async fn live_ids<B: Backend>(
    tx: &mut crate::events::Tx<B>,
    user_id: Uuid,
    except: Option<Uuid>,
    skip: u32,
    now: OffsetDateTime,
) -> Result<Vec<Uuid>, StoreError> {
    // `LIMIT` with the largest count: SQLite takes no `OFFSET` without one,
    // PostgreSQL refuses SQLite's `LIMIT -1`.
    let q = format!(
        "SELECT id FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND idle_expires_at > $2 \
         AND absolute_expires_at > $2 AND id IS DISTINCT FROM $3 ORDER BY created_at DESC, id DESC \
         LIMIT $5 OFFSET $4{}",
        B::lock(Lock::Update)
    );
    let rows = tx
        .fetch_all(
            sql(&q)
                .bind(user_id)
                .bind(now)
                .bind(except)
                .bind(skip)
                .bind(i64::MAX),
        )
        .await?;
    rows.iter().map(|r| r.get("id")).collect()
}

#[async_trait]
impl<B: Backend> SessionStore for SqlStore<B> {
    async fn create_session(
        &self,
        s: &NewSession,
        first: &RefreshToken,
        max_live: u32,
        seen_stamp: i64,
        after: &Aftermath<'_>,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut tx = self.begin().await?;
        let q = format!(
            "SELECT security_stamp FROM users WHERE id = $1{}",
            B::lock(Lock::NoKeyUpdate)
        );
        let current = tx.fetch_optional(sql(&q).bind(s.user_id)).await?;
        let current: Option<i64> = current.map(|r| r.get("security_stamp")).transpose()?;
        if current != Some(seen_stamp) {
            return Err(StoreError::Conflict {
                constraint: SECURITY_CHANGED,
            });
        }
        tx.execute(
            sql("INSERT INTO sessions (id, user_id, created_at, last_seen_at, idle_expires_at, absolute_expires_at, \
                 ip, user_agent, device_type, device_os, device_browser, fingerprint, remember_me, amr, cookie_mode) \
                 VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)")
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
            .bind(s.cookie_mode),
        )
        .await?;
        insert_token(&mut tx, first, s.id).await?;
        let excess = live_ids::<B>(
            &mut tx,
            s.user_id,
            Some(s.id),
            max_live.saturating_sub(1),
            s.created_at,
        )
        .await?;
        revoke_ids(&mut tx, &excess, RevokeReason::SessionLimit, s.created_at).await?;
        crate::aftermath::apply::<B>(&mut tx, s.user_id, after, s.created_at).await?;
        tx.commit().await?;
        Ok(excess)
    }

    async fn session(&self, id: Uuid) -> Result<Option<Session>, StoreError> {
        let q = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
        let row = self.pool().fetch_optional(sql(&q).bind(id)).await?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn live_sessions(
        &self,
        user_id: Uuid,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        let q = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND idle_expires_at > $2 \
             AND absolute_expires_at > $2 ORDER BY created_at DESC, id DESC"
        );
        let rows = self
            .pool()
            .fetch_all(sql(&q).bind(user_id).bind(now))
            .await?;
        rows.iter().map(session_from_row).collect()
    }

    async fn device_seen(
        &self,
        user_id: Uuid,
        fingerprint: &str,
    ) -> Result<DeviceSeen, StoreError> {
        let row = self
            .pool()
            .fetch_one(
                sql("SELECT EXISTS(SELECT 1 FROM sessions WHERE user_id = $1) AS seen_any, \
                     EXISTS(SELECT 1 FROM sessions WHERE user_id = $1 AND fingerprint = $2) AS seen_same")
                .bind(user_id)
                .bind(fingerprint),
            )
            .await?;
        Ok(match (row.get("seen_any")?, row.get("seen_same")?) {
            (false, _) => DeviceSeen::FirstSignIn,
            (true, true) => DeviceSeen::Known,
            (true, false) => DeviceSeen::New,
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
        let mut tx = self.begin().await?;
        // Lock order: the session row first, then its tokens — the same order as
        // every revocation. Locking the token first (the conditional UPDATE) let
        // a loser's re-check keep the token locked while it waited for the
        // session another loser held: a deadlock under concurrent reuse. One
        // statement finds the token's session and locks it (the subquery's
        // token row is read, not locked).
        let q = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions \
             WHERE id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $1){}",
            B::lock(Lock::Update)
        );
        let Some(locked) = tx.fetch_optional(sql(&q).bind(presented)).await? else {
            return Ok(RotateOutcome::Invalid);
        };
        let spent = tx
            .fetch_optional(
                sql("UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL \
                     AND revoked_at IS NULL AND expires_at > $1 RETURNING session_id")
                .bind(now)
                .bind(presented),
            )
            .await?;
        if let Some(spent) = spent {
            let session_id: Uuid = spent.get("session_id")?;
            let mut session = session_from_row(&locked)?;
            if !session.is_live(now) {
                return Ok(RotateOutcome::Invalid); // dropped tx rolls back
            }
            // The family lives as long as its session, whatever `next` says.
            let next = RefreshToken {
                expires_at: session.absolute_expires_at,
                ..next.clone()
            };
            insert_token(&mut tx, &next, session_id).await?;
            session.last_seen_at = now;
            session.idle_expires_at = (now + idle_timeout).min(session.absolute_expires_at);
            tx.execute(
                sql("UPDATE sessions SET last_seen_at = $1, idle_expires_at = $2 WHERE id = $3")
                    .bind(now)
                    .bind(session.idle_expires_at)
                    .bind(session_id),
            )
            .await?;
            tx.commit().await?;
            return Ok(RotateOutcome::Rotated(Box::new(session)));
        }
        let row = tx
            .fetch_optional(
                sql("SELECT t.session_id, t.used_at, t.revoked_at, s.user_id FROM refresh_tokens t \
                     JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1")
                .bind(presented),
            )
            .await?;
        let Some(row) = row else {
            return Ok(RotateOutcome::Invalid);
        };
        let Some(used_at) = row.get::<Option<OffsetDateTime>>("used_at")? else {
            return Ok(RotateOutcome::Invalid);
        };
        if now - used_at <= grace {
            let revoked: Option<OffsetDateTime> = row.get("revoked_at")?;
            let session = session_from_row(&locked)?;
            return Ok(if revoked.is_none() && session.is_live(now) {
                RotateOutcome::Concurrent(Box::new(session))
            } else {
                RotateOutcome::Invalid
            });
        }
        let session_id: Uuid = row.get("session_id")?;
        let user_id: Uuid = row.get("user_id")?;
        let revoked = revoke_ids(&mut tx, &[session_id], RevokeReason::RefreshReuse, now).await?;
        tx.commit().await?;
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
        let mut tx = self.begin().await?;
        let q = format!(
            "SELECT id FROM sessions WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL \
             AND idle_expires_at > $3 AND absolute_expires_at > $3{}",
            B::lock(Lock::Update)
        );
        let live = tx
            .fetch_optional(sql(&q).bind(session_id).bind(user_id).bind(now))
            .await?;
        let changed = match live {
            Some(row) => revoke_ids(&mut tx, &[row.get("id")?], reason, now).await?,
            None => 0,
        };
        tx.commit().await?;
        Ok(changed > 0)
    }

    async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        keep: Option<Uuid>,
        reason: RevokeReason,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let n =
            crate::aftermath::revoke_everything::<B>(&mut tx, user_id, keep, reason, now).await?;
        tx.commit().await?;
        Ok(n)
    }

    async fn refresh_token_session(
        &self,
        token_hash: &[u8; 32],
        now: OffsetDateTime,
        used_within: Duration,
    ) -> Result<Option<(Session, OffsetDateTime)>, StoreError> {
        let q = format!(
            "SELECT t.expires_at AS token_expires_at, {cols} FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
             WHERE t.token_hash = $1 AND (t.used_at IS NULL OR t.used_at > $3) AND t.revoked_at IS NULL \
             AND t.expires_at > $2",
            cols = SESSION_COLUMNS.split(", ").map(|c| format!("s.{c}")).collect::<Vec<_>>().join(", ")
        );
        let row = self
            .pool()
            .fetch_optional(sql(&q).bind(token_hash).bind(now).bind(now - used_within))
            .await?;
        row.map(|r| Ok((session_from_row(&r)?, r.get("token_expires_at")?)))
            .transpose()
    }

    async fn deny_access_token(
        &self,
        jti: Uuid,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.pool()
            .execute(
                sql(
                    "INSERT INTO denied_access_tokens (jti, expires_at) VALUES ($1, $2) \
                     ON CONFLICT (jti) DO NOTHING",
                )
                .bind(jti)
                .bind(expires_at),
            )
            .await?;
        Ok(())
    }

    async fn is_access_token_denied(&self, jti: Uuid) -> Result<bool, StoreError> {
        let found = self
            .pool()
            .fetch_optional(sql("SELECT jti FROM denied_access_tokens WHERE jti = $1").bind(jti))
            .await?;
        Ok(found.is_some())
    }
}
