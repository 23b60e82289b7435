-- Security events in a hash chain (core `audit::chain`): each gets its place
-- `seq` and its `content_hash` / `hash` when its transaction commits, while
-- the transaction holds the one-row chain head `audit_chain`. Events outlive
-- their account (no foreign key): deleting an account redacts its events
-- (personal fields cleared, `redacted` set, hashes kept) so the chain still
-- verifies. `user_id` is NULL once redacted. Rows from before the chain
-- (seq NULL) are chained, in time order, when the store is next migrated.
CREATE TABLE security_events_chained (
    id           BLOB    NOT NULL PRIMARY KEY,
    seq          INTEGER,
    user_id      BLOB,
    kind         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    session_id   BLOB,
    ip           TEXT,
    user_agent   TEXT,
    actor_id     BLOB,
    details      TEXT,
    content_hash BLOB,
    hash         BLOB,
    redacted     INTEGER NOT NULL DEFAULT 0
) STRICT;
INSERT INTO security_events_chained (id, user_id, kind, created_at, session_id, ip, actor_id, details)
    SELECT id, user_id, kind, created_at, session_id, ip, actor_id, details FROM security_events;
DROP TABLE security_events;
ALTER TABLE security_events_chained RENAME TO security_events;
CREATE INDEX security_events_user_id ON security_events (user_id, id);
CREATE UNIQUE INDEX security_events_seq ON security_events (seq);

CREATE TABLE audit_chain (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB    NOT NULL
) STRICT;
INSERT INTO audit_chain (id, seq, hash) VALUES (1, 0, zeroblob(32));

-- An event written into the chain moves the head to it in the same statement
-- (the insert itself is conditional on the head it follows: store-sql events.rs).
CREATE TRIGGER security_events_chain_head AFTER INSERT ON security_events
WHEN NEW.seq IS NOT NULL
BEGIN
    UPDATE audit_chain SET seq = NEW.seq, hash = NEW.hash WHERE id = 1;
END;
