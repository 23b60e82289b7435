-- Failed-login bookkeeping per identifier (HMAC of the normalized email, for
-- known and unknown addresses alike): the brute-force lockout.
CREATE TABLE login_throttles (
    key          BYTEA       NOT NULL PRIMARY KEY,
    failures     INTEGER     NOT NULL DEFAULT 0,
    lock_count   INTEGER     NOT NULL DEFAULT 0,
    locked_until TIMESTAMPTZ,
    updated_at   TIMESTAMPTZ NOT NULL
);
