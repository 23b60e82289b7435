-- Whether a session was delivered in cookie mode (a browser): only those get
-- the refresh grace for concurrent tabs and a CSRF token from GET /v1/csrf.
-- NULL for sessions created before this was recorded: they keep the behaviour
-- they were created under until they end.
ALTER TABLE sessions ADD COLUMN cookie_mode INTEGER;
