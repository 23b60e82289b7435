-- The admin search by name prefix reads the range [prefix, successor) of this
-- index (BINARY collation: code point order) instead of every account's name.
CREATE INDEX users_name ON users (name);
