-- Previous password hashes (the password policy's history rule); the current
-- hash stays in users.password_hash. Erased with the user.
CREATE TABLE password_history (
    id            BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       UUID        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    password_hash TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX password_history_user_id ON password_history (user_id, id);
