-- Accounts. Timestamps are unix microseconds (INTEGER), ids UUID bytes (BLOB).
CREATE TABLE users (
    id                 BLOB    NOT NULL PRIMARY KEY,
    email              TEXT    NOT NULL,
    email_normalized   TEXT    NOT NULL,
    name               TEXT,
    password_hash      TEXT    NOT NULL,
    email_verified_at  INTEGER,
    disabled_at        INTEGER,
    failed_login_count INTEGER NOT NULL DEFAULT 0,
    last_login_at      INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX users_email_normalized ON users (email_normalized);
