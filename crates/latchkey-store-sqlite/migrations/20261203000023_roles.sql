-- Roles and who holds them. `permissions` is the space-separated list of
-- permission names; the built-in `admin` role grants every permission whatever
-- it says, and cannot be deleted. A user's roles go with the user, a role's
-- holders with the role.
CREATE TABLE roles (
    name        TEXT    NOT NULL PRIMARY KEY,
    description TEXT    NOT NULL,
    permissions TEXT    NOT NULL,
    builtin     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE user_roles (
    user_id    BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_name  TEXT    NOT NULL REFERENCES roles (name) ON DELETE CASCADE,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, role_name)
) STRICT;
CREATE INDEX user_roles_role_name ON user_roles (role_name);

INSERT INTO roles (name, description, permissions, builtin, created_at) VALUES (
    'admin',
    'Every permission (built in)',
    'users:read users:write roles:assign roles:write audit:read keys:rotate events:manage webhooks:write credits:write',
    1,
    CAST(strftime('%s', 'now') AS INTEGER) * 1000000
);

-- Who made a change (an administrator; NULL for the user themself or the
-- operator CLI) and what changed, as a JSON object (never a secret).
ALTER TABLE security_events ADD COLUMN actor_id BLOB;
ALTER TABLE security_events ADD COLUMN details TEXT;
