-- When the current password was set (password age in GET /v1/me/security).
ALTER TABLE users ADD COLUMN password_changed_at TIMESTAMPTZ;
UPDATE users SET password_changed_at = created_at;
