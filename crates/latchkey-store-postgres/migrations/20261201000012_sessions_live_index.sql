-- Live sessions by user, newest first: what the session limit and "sign out
-- everywhere" read. Revoked rows stay until cleanup (every sign-in past the limit
-- revokes one), so an index over all rows made each sign-in slower the more
-- often that user had signed in. The expiry columns and id are in the index so
-- the walk past the limit reads index entries only, not the rows.
CREATE INDEX sessions_live ON sessions (user_id, created_at, id, idle_expires_at, absolute_expires_at)
    WHERE revoked_at IS NULL;
-- "Has this user signed in from this device before?" (new-device notice) without
-- scanning the user's sessions.
CREATE INDEX sessions_user_fingerprint ON sessions (user_id, fingerprint);
