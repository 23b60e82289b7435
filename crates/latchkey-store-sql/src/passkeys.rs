//! `PasskeyStore`.

use async_trait::async_trait;
use latchkey_core::mfa::passkey::{passkey_flags, Ceremony, CeremonyKind, PasskeyRecord};
use latchkey_core::ports::{Aftermath, PasskeyStore, StoreError, PASSKEY_LIMIT};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::backend::{Backend, Exec, Transaction};
use crate::query::sql;
use crate::row::{Row, RowExt};
use crate::SqlStore;

const COLUMNS: &str = "id, user_id, credential_id, name, passkey, counter, backup_eligible, \
     backup_state, created_at, last_used_at";

const CEREMONY_COLUMNS: &str = "id, user_id, kind, state, name, created_at, expires_at, owner";

fn passkey_from_row<R: Row>(row: &R) -> Result<PasskeyRecord, StoreError> {
    let counter: i64 = row.get("counter")?;
    Ok(PasskeyRecord {
        id: row.get("id")?,
        user_id: row.get("user_id")?,
        credential_id: row.get("credential_id")?,
        name: row.get("name")?,
        passkey_json: row.get("passkey")?,
        counter: u32::try_from(counter).unwrap_or(u32::MAX),
        backup_eligible: row.get("backup_eligible")?,
        backup_state: row.get("backup_state")?,
        created_at: row.get("created_at")?,
        last_used_at: row.get("last_used_at")?,
    })
}

fn ceremony_from_row<R: Row>(row: &R) -> Result<Ceremony, StoreError> {
    let kind: String = row.get("kind")?;
    Ok(Ceremony {
        id: row.get("id")?,
        user_id: row.get("user_id")?,
        kind: CeremonyKind::parse(&kind)
            .ok_or_else(|| StoreError::Internal(format!("unknown ceremony kind {kind}").into()))?,
        state_json: row.get("state")?,
        name: row.get("name")?,
        created_at: row.get("created_at")?,
        expires_at: row.get("expires_at")?,
        owner: row.get("owner")?,
    })
}

#[async_trait]
impl<B: Backend> PasskeyStore for SqlStore<B> {
    async fn insert_passkey(
        &self,
        p: &PasskeyRecord,
        after: &Aftermath<'_>,
        max_per_user: u32,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        // Registrations of one user take turns here, so the count holds.
        crate::mfa::lock_user_factors::<B>(&mut tx, p.user_id).await?;
        let held = tx
            .fetch_one(
                sql("SELECT COUNT(*) AS held FROM webauthn_credentials WHERE user_id = $1")
                    .bind(p.user_id),
            )
            .await?;
        if held.get::<i64>("held")? >= i64::from(max_per_user) {
            return Err(StoreError::Conflict {
                constraint: PASSKEY_LIMIT,
            });
        }
        let q = format!(
            "INSERT INTO webauthn_credentials ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        );
        tx.execute(
            sql(&q)
                .bind(p.id)
                .bind(p.user_id)
                .bind(&p.credential_id)
                .bind(&p.name)
                .bind(&p.passkey_json)
                .bind(p.counter)
                .bind(p.backup_eligible)
                .bind(p.backup_state)
                .bind(p.created_at)
                .bind(p.last_used_at),
        )
        .await?;
        crate::aftermath::apply::<B>(&mut tx, p.user_id, after, p.created_at).await?;
        tx.commit().await
    }

    async fn passkeys(&self, user_id: Uuid) -> Result<Vec<PasskeyRecord>, StoreError> {
        let q = format!(
            "SELECT {COLUMNS} FROM webauthn_credentials WHERE user_id = $1 ORDER BY created_at, id"
        );
        let rows = self.pool().fetch_all(sql(&q).bind(user_id)).await?;
        rows.iter().map(passkey_from_row).collect()
    }

    async fn record_passkey_use(
        &self,
        id: Uuid,
        passkey_json: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let (counter, eligible, state) = passkey_flags(passkey_json);
        self.pool()
            .execute(
                sql("UPDATE webauthn_credentials SET passkey = $1, counter = $2, backup_eligible = $3, \
                     backup_state = $4, last_used_at = $5 WHERE id = $6")
                .bind(passkey_json)
                .bind(counter)
                .bind(eligible)
                .bind(state)
                .bind(now)
                .bind(id),
            )
            .await?;
        Ok(())
    }

    async fn rename_passkey(
        &self,
        user_id: Uuid,
        id: Uuid,
        name: &str,
    ) -> Result<bool, StoreError> {
        let changed = self
            .pool()
            .execute(
                sql("UPDATE webauthn_credentials SET name = $1 WHERE id = $2 AND user_id = $3")
                    .bind(name)
                    .bind(id)
                    .bind(user_id),
            )
            .await?;
        Ok(changed == 1)
    }

    async fn delete_passkey(
        &self,
        user_id: Uuid,
        id: Uuid,
        now: OffsetDateTime,
        after: &Aftermath<'_>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        crate::mfa::lock_user_factors::<B>(&mut tx, user_id).await?;
        let changed = tx
            .execute(
                sql("DELETE FROM webauthn_credentials WHERE id = $1 AND user_id = $2")
                    .bind(id)
                    .bind(user_id),
            )
            .await?;
        if changed != 1 {
            return Ok(false);
        }
        crate::aftermath::apply::<B>(&mut tx, user_id, after, now).await?;
        crate::mfa::drop_codes_without_factor(&mut tx, user_id).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn create_ceremony(&self, c: &Ceremony, max_open: u32) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let q = format!(
            "INSERT INTO webauthn_ceremonies ({CEREMONY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        );
        tx.execute(
            sql(&q)
                .bind(c.id)
                .bind(c.user_id)
                .bind(c.kind.as_str())
                .bind(&c.state_json)
                .bind(&c.name)
                .bind(c.created_at)
                .bind(c.expires_at)
                .bind(&c.owner),
        )
        .await?;
        tx.execute(
            sql("DELETE FROM webauthn_ceremonies WHERE owner = $1 AND id NOT IN \
                 (SELECT id FROM webauthn_ceremonies WHERE owner = $1 ORDER BY created_at DESC, id DESC LIMIT $2)")
            .bind(&c.owner)
            .bind(max_open),
        )
        .await?;
        tx.commit().await
    }

    async fn take_ceremony(&self, id: Uuid) -> Result<Option<Ceremony>, StoreError> {
        let q =
            format!("DELETE FROM webauthn_ceremonies WHERE id = $1 RETURNING {CEREMONY_COLUMNS}");
        let row = self.pool().fetch_optional(sql(&q).bind(id)).await?;
        row.as_ref().map(ceremony_from_row).transpose()
    }
}
