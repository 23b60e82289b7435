-- Live sessions by user, newest first: what the session limit and "sign out
-- everywhere" read. Revoked rows stay until cleanup (every sign-in past the limit
-- revokes one), so an index over all rows made each sign-in slower the more
-- often that user had signed in. The columns are those of the SQLite index
-- (where they make the walk index-only; both backends keep the same indexes).
-- Here the query locks the rows it walks (FOR UPDATE), so it reads them too,
-- but only the user's live ones.
CREATE INDEX sessions_live
    ON sessions (user_id, created_at, id, idle_expires_at, absolute_expires_at, revoked_at)
    WHERE revoked_at IS NULL;
-- "Has this user signed in from this device before?" (new-device notice) without
-- scanning the user's sessions.
CREATE INDEX sessions_user_fingerprint ON sessions (user_id, fingerprint);
