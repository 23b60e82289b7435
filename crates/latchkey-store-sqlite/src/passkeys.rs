//! `PasskeyStore` on SQLite.

use async_trait::async_trait;
use latchkey_core::mfa::passkey::{passkey_flags, Ceremony, CeremonyKind, PasskeyRecord};
use latchkey_core::ports::{Aftermath, PasskeyStore, StoreError};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::time_codec::{from_micros, from_micros_opt, to_micros};
use crate::{map_error, SqliteStore};

const COLUMNS: &str = "id, user_id, credential_id, name, passkey, counter, backup_eligible, \
     backup_state, created_at, last_used_at";

fn passkey_from_row(row: &SqliteRow) -> Result<PasskeyRecord, StoreError> {
    let counter: i64 = row.try_get("counter").map_err(map_error)?;
    Ok(PasskeyRecord {
        id: row.try_get("id").map_err(map_error)?,
        user_id: row.try_get("user_id").map_err(map_error)?,
        credential_id: row.try_get("credential_id").map_err(map_error)?,
        name: row.try_get("name").map_err(map_error)?,
        passkey_json: row.try_get("passkey").map_err(map_error)?,
        counter: u32::try_from(counter).unwrap_or(u32::MAX),
        backup_eligible: row.try_get("backup_eligible").map_err(map_error)?,
        backup_state: row.try_get("backup_state").map_err(map_error)?,
        created_at: from_micros(row.try_get("created_at").map_err(map_error)?)?,
        last_used_at: from_micros_opt(row.try_get("last_used_at").map_err(map_error)?)?,
    })
}

fn ceremony_from_row(row: &SqliteRow) -> Result<Ceremony, StoreError> {
    let kind: String = row.try_get("kind").map_err(map_error)?;
    Ok(Ceremony {
        id: row.try_get("id").map_err(map_error)?,
        user_id: row.try_get("user_id").map_err(map_error)?,
        kind: CeremonyKind::parse(&kind)
            .ok_or_else(|| StoreError::Internal(format!("unknown ceremony kind {kind}").into()))?,
        state_json: row.try_get("state").map_err(map_error)?,
        name: row.try_get("name").map_err(map_error)?,
        created_at: from_micros(row.try_get("created_at").map_err(map_error)?)?,
        expires_at: from_micros(row.try_get("expires_at").map_err(map_error)?)?,
        owner: row.try_get("owner").map_err(map_error)?,
    })
}

#[async_trait]
impl PasskeyStore for SqliteStore {
    async fn insert_passkey(
        &self,
        p: &PasskeyRecord,
        after: &Aftermath<'_>,
        max_per_user: u32,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_transaction().await?;
        // Registrations of one user take turns here, so the count holds.
        crate::mfa::lock_user_factors(&mut tx, p.user_id).await?;
        let held: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM webauthn_credentials WHERE user_id = ?")
                .bind(p.user_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(map_error)?;
        if held >= i64::from(max_per_user) {
            return Err(StoreError::Conflict {
                constraint: latchkey_core::ports::PASSKEY_LIMIT,
            });
        }
        sqlx::query(
            "INSERT INTO webauthn_credentials (id, user_id, credential_id, name, passkey, counter, \
             backup_eligible, backup_state, created_at, last_used_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(p.id)
        .bind(p.user_id)
        .bind(&p.credential_id)
        .bind(&p.name)
        .bind(&p.passkey_json)
        .bind(i64::from(p.counter))
        .bind(p.backup_eligible)
        .bind(p.backup_state)
        .bind(to_micros(p.created_at))
        .bind(p.last_used_at.map(to_micros))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        crate::aftermath::apply(&mut tx, p.user_id, after, p.created_at).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(())
    }

    async fn passkeys(&self, user_id: Uuid) -> Result<Vec<PasskeyRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM webauthn_credentials WHERE user_id = ? ORDER BY created_at, id"
        );
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .fetch_all(self.pool())
            .await
            .map_err(map_error)?;
        rows.iter().map(passkey_from_row).collect()
    }

    async fn record_passkey_use(
        &self,
        id: Uuid,
        passkey_json: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let (counter, eligible, state) = passkey_flags(passkey_json);
        sqlx::query(
            "UPDATE webauthn_credentials SET passkey = ?, counter = ?, backup_eligible = ?, \
             backup_state = ?, last_used_at = ? WHERE id = ?",
        )
        .bind(passkey_json)
        .bind(i64::from(counter))
        .bind(eligible)
        .bind(state)
        .bind(to_micros(now))
        .bind(id)
        .execute(self.pool())
        .await
        .map_err(map_error)?;
        Ok(())
    }

    async fn rename_passkey(
        &self,
        user_id: Uuid,
        id: Uuid,
        name: &str,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE webauthn_credentials SET name = ? WHERE id = ? AND user_id = ?")
                .bind(name)
                .bind(id)
                .bind(user_id)
                .execute(self.pool())
                .await
                .map_err(map_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_passkey(
        &self,
        user_id: Uuid,
        id: Uuid,
        now: OffsetDateTime,
        after: &Aftermath<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_transaction().await?;
        crate::mfa::lock_user_factors(&mut tx, user_id).await?;
        let done = sqlx::query("DELETE FROM webauthn_credentials WHERE id = ? AND user_id = ?")
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(map_error)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        crate::aftermath::apply(&mut tx, user_id, after, now).await?;
        crate::mfa::drop_codes_without_factor(&mut tx, user_id).await?;
        tx.commit().await.map_err(map_error)?;
        Ok(true)
    }

    async fn create_ceremony(&self, c: &Ceremony, max_open: u32) -> Result<(), StoreError> {
        let mut tx = self.write_transaction().await?;
        sqlx::query(
            "INSERT INTO webauthn_ceremonies (id, user_id, kind, state, name, created_at, expires_at, owner) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(c.id)
        .bind(c.user_id)
        .bind(c.kind.as_str())
        .bind(&c.state_json)
        .bind(&c.name)
        .bind(to_micros(c.created_at))
        .bind(to_micros(c.expires_at))
        .bind(&c.owner)
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        sqlx::query(
            "DELETE FROM webauthn_ceremonies WHERE owner = ?1 AND id NOT IN \
             (SELECT id FROM webauthn_ceremonies WHERE owner = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2)",
        )
        .bind(&c.owner)
        .bind(i64::from(max_open))
        .execute(&mut *tx)
        .await
        .map_err(map_error)?;
        tx.commit().await.map_err(map_error)
    }

    async fn take_ceremony(&self, id: Uuid) -> Result<Option<Ceremony>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM webauthn_ceremonies WHERE id = ? \
             RETURNING id, user_id, kind, state, name, created_at, expires_at, owner",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(map_error)?;
        row.as_ref().map(ceremony_from_row).transpose()
    }
}
