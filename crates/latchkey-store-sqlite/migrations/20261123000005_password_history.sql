-- Previous password hashes (the password policy's history rule); the current
-- hash stays in users.password_hash. Erased with the user.
CREATE TABLE password_history (
    id            INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    user_id       BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX password_history_user_id ON password_history (user_id, id);
