-- Accounts.
CREATE TABLE users (
    id                 UUID        NOT NULL PRIMARY KEY,
    email              TEXT        NOT NULL,
    email_normalized   TEXT        NOT NULL,
    name               TEXT,
    password_hash      TEXT        NOT NULL,
    email_verified_at  TIMESTAMPTZ,
    disabled_at        TIMESTAMPTZ,
    failed_login_count INTEGER     NOT NULL DEFAULT 0,
    last_login_at      TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);

CREATE UNIQUE INDEX users_email_normalized ON users (email_normalized);
