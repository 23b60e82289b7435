-- Idempotency-Key records: the first answer to an unsafe request, kept for a
-- day per (principal, method, target, key). `record_key` is an HMAC of those
-- four (no address or key in clear); the primary key decides which of two
-- concurrent duplicates runs. `claim` is the random id of the request running
-- it (completing or releasing needs it: a stale run taken over cannot
-- overwrite its successor). `response` (status, content type, body) is sealed
-- under the master key, the record key as associated data. A user's records
-- go with the user.
CREATE TABLE idempotency_keys (
    record_key   BLOB    NOT NULL PRIMARY KEY,
    request_hash BLOB    NOT NULL,
    claim        BLOB    NOT NULL,
    user_id      BLOB    REFERENCES users (id) ON DELETE CASCADE,
    response     BLOB,
    created_at   INTEGER NOT NULL,
    completed_at INTEGER
) STRICT;
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
CREATE INDEX idempotency_keys_user_id ON idempotency_keys (user_id);
