//! Writing an [`Aftermath`] inside the transaction of the change it follows.

use latchkey_core::ports::{Aftermath, StoreError};
use latchkey_core::session::RevokeReason;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::backend::{Backend, Exec};
use crate::query::sql;

/// Revokes, records and queues what `after` asks for, for `user_id`, in `tx`.
pub(crate) async fn apply<B: Backend>(
    tx: &mut crate::events::Tx<B>,
    user_id: Uuid,
    after: &Aftermath<'_>,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    if let Some(r) = after.revoke {
        revoke_everything::<B>(tx, user_id, r.keep, r.reason, now).await?;
    }
    if let Some(event) = after.event {
        crate::events::insert_event(tx, event);
    }
    if let Some(mail) = after.mail {
        crate::mail::insert_mail(tx, mail).await?;
    }
    if let Some(hashes) = after.recovery_codes {
        crate::mfa::insert_codes(tx, user_id, hashes, now).await?;
    }
    Ok(())
}

/// What every revocation of a user's sessions brings, in `tx`: the security
/// stamp moves on (sign-ins that read the old one start no session, see
/// `create_session`), the pending email changes are deleted (a link an
/// attacker asked for in another session dies with that session), and every
/// live session but `keep` is revoked with its tokens. Returns how many
/// sessions it revoked. The user row is written first, as sign-ins and
/// email-change confirmations lock it first (one lock order: no deadlock).
pub(crate) async fn revoke_everything<B: Backend>(
    tx: &mut crate::events::Tx<B>,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: RevokeReason,
    now: OffsetDateTime,
) -> Result<u64, StoreError> {
    tx.execute(
        sql("UPDATE users SET security_stamp = security_stamp + 1 WHERE id = $1").bind(user_id),
    )
    .await?;
    tx.execute(sql("DELETE FROM email_change_tokens WHERE user_id = $1").bind(user_id))
        .await?;
    let ids = crate::sessions::live_ids::<B>(tx, user_id, keep, 0, now).await?;
    crate::sessions::revoke_ids(tx, &ids, reason, now).await
}
