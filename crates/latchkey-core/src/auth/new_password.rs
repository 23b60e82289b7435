//! Checking a new password against the whole policy: the local rules, then the
//! user's password history.

use uuid::Uuid;

use crate::password::{normalize, sha1_hex, PasswordProblem, PolicyContext};

use super::{AuthError, Passwords};

/// Why a new password was refused: every rule it failed (each becomes a
/// `validation_failed` field error with its own code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeakPassword(pub Vec<PasswordProblem>);

impl Passwords {
    /// Checks `password` for a user (`user_id` is `None` at sign-up): length,
    /// composition and strength (zxcvbn, off the async threads), then — only if
    /// those pass, since each costs a hash — the last `history` passwords of the
    /// user, the current one included.
    pub async fn check_new_password(
        &self,
        password: &str,
        context: &PolicyContext<'_>,
        user: Option<(Uuid, &str)>,
    ) -> Result<Result<(), WeakPassword>, AuthError> {
        let policy = self.policy.clone();
        let words = OwnedContext::from(context);
        let candidate = zeroize::Zeroizing::new(password.to_owned());
        let problems =
            tokio::task::spawn_blocking(move || policy.check(&candidate, &words.as_context()))
                .await
                .map_err(|_| AuthError::Password(crate::password::PasswordError::Internal))?;
        if !problems.is_empty() {
            return Ok(Err(WeakPassword(problems)));
        }
        if self.is_breached(password).await? {
            return Ok(Err(WeakPassword(vec![PasswordProblem::breached()])));
        }
        let history = self.policy.history;
        if let (Some((user_id, current_hash)), true) = (user, history > 0) {
            let mut hashes = vec![current_hash.to_owned()];
            hashes.extend(
                self.store
                    .password_history(user_id, history.saturating_sub(1))
                    .await?,
            );
            for hash in hashes {
                let verdict = self
                    .hasher
                    .verify(password, &hash)
                    .await
                    .map_err(AuthError::Password)?;
                if verdict.matches {
                    return Ok(Err(WeakPassword(vec![PasswordProblem::reused(history)])));
                }
            }
        }
        Ok(Ok(()))
    }
}

impl Passwords {
    /// Whether the password is in the breach corpus; `false` when the check is
    /// off, or cannot answer and fails open.
    async fn is_breached(&self, password: &str) -> Result<bool, AuthError> {
        let Some(breach) = &self.breach else {
            return Ok(false);
        };
        let hash = sha1_hex(&normalize(password));
        match breach.checker.is_breached(&hash).await {
            Ok(breached) => Ok(breached),
            Err(e) => {
                if breach.fail_open {
                    tracing::warn!(error = %e, "breached-password check unavailable: password accepted unchecked");
                    Ok(false)
                } else {
                    tracing::warn!(error = %e, "breached-password check unavailable: password refused");
                    Err(AuthError::BreachCheckUnavailable)
                }
            }
        }
    }
}

/// A [`PolicyContext`] that can cross into the blocking pool.
struct OwnedContext {
    email: String,
    name: Option<String>,
    service: String,
}

impl From<&PolicyContext<'_>> for OwnedContext {
    fn from(c: &PolicyContext<'_>) -> Self {
        Self {
            email: c.email.to_owned(),
            name: c.name.map(str::to_owned),
            service: c.service.to_owned(),
        }
    }
}

impl OwnedContext {
    fn as_context(&self) -> PolicyContext<'_> {
        PolicyContext {
            email: &self.email,
            name: self.name.as_deref(),
            service: &self.service,
        }
    }
}
