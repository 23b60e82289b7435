-- Access-token signing keys shared by every node (production key storage).
-- The private key is sealed with the master key (XChaCha20-Poly1305, kid as
-- associated data); it never reaches the database in clear.
CREATE TABLE signing_keys (
    kid        TEXT    NOT NULL PRIMARY KEY,
    algorithm  TEXT    NOT NULL,
    sealed_key BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX signing_keys_algorithm_created_at ON signing_keys (algorithm, created_at);
