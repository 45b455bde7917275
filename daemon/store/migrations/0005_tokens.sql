-- Access control: API tokens (only a SHA-256 of each is kept) and how each
-- application's functions may be called ('open' or 'key').
CREATE TABLE tokens (
    name       TEXT PRIMARY KEY,
    -- The token's public part, `hearth_<id>_<secret>`: found by it, then
    -- the hash of the whole token is compared in constant time.
    id         TEXT NOT NULL UNIQUE,
    sha256     TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    apps       TEXT NOT NULL DEFAULT '',
    origin     TEXT NOT NULL DEFAULT 'api',
    created_at INTEGER NOT NULL,
    last_used  INTEGER
);

ALTER TABLE applications ADD COLUMN invoke TEXT NOT NULL DEFAULT 'open';
