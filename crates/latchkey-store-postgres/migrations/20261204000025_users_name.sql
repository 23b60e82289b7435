-- The admin search by name prefix reads the range [prefix, successor) of this
-- index in code point order (collation "C", as the query compares) instead of
-- every account's name.
CREATE INDEX users_name ON users (name COLLATE "C");
