-- One row per call. The record itself is JSON (`record`); the columns
-- beside it are what queries filter and retention counts on.
CREATE TABLE calls (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    function TEXT NOT NULL,
    version INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    started_at_ms INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX calls_function_seq ON calls (function, seq);
CREATE INDEX calls_request_id ON calls (request_id);
CREATE INDEX calls_started_at ON calls (started_at_ms);
