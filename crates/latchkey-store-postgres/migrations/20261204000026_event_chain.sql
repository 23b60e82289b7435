-- Security events in a hash chain (core `audit::chain`): each gets its place
-- `seq` and its `content_hash` / `hash` when its transaction commits, while
-- the transaction holds the one-row chain head `audit_chain`. Events outlive
-- their account (no foreign key): deleting an account redacts its events
-- (personal fields cleared, `redacted` set, hashes kept) so the chain still
-- verifies. `user_id` is NULL once redacted. Rows from before the chain
-- (seq NULL) are chained, in time order, when the store is next migrated.
ALTER TABLE security_events DROP CONSTRAINT security_events_user_id_fkey;
ALTER TABLE security_events ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE security_events
    ADD COLUMN seq BIGINT,
    ADD COLUMN user_agent TEXT,
    ADD COLUMN content_hash BYTEA,
    ADD COLUMN hash BYTEA,
    ADD COLUMN redacted BOOLEAN NOT NULL DEFAULT FALSE;
CREATE UNIQUE INDEX security_events_seq ON security_events (seq);
-- Listings go newest first by id (UUIDv7), a user's too.
DROP INDEX security_events_user_id;
CREATE INDEX security_events_user_id ON security_events (user_id, id);

CREATE TABLE audit_chain (
    id   SMALLINT NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  BIGINT   NOT NULL,
    hash BYTEA    NOT NULL
);
INSERT INTO audit_chain (id, seq, hash) VALUES (1, 0, decode(repeat('00', 32), 'hex'));

-- An event written into the chain moves the head to it in the same statement
-- (the insert itself is conditional on the head it follows: store-sql events.rs).
CREATE FUNCTION security_events_chain_head() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE audit_chain SET seq = NEW.seq, hash = NEW.hash WHERE id = 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER security_events_chain_head AFTER INSERT ON security_events
    FOR EACH ROW WHEN (NEW.seq IS NOT NULL) EXECUTE FUNCTION security_events_chain_head();
