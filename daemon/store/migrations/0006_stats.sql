-- Application statistics: one row per (application, function, version,
-- minute) with the minute's totals, added to by each flush (several
-- processes sharing the store add to the same rows). Durations and
-- outcomes are counted in stats_counts: kind 'b' (key: a histogram bucket,
-- hearth_api::Histogram) or 'o' (key: an outcome that is not ok).
CREATE TABLE stats_minutes (
    app           TEXT NOT NULL,
    function      TEXT NOT NULL,
    version       INTEGER NOT NULL,
    -- Minutes since the epoch.
    minute        INTEGER NOT NULL,
    calls         INTEGER NOT NULL DEFAULT 0,
    ok            INTEGER NOT NULL DEFAULT 0,
    rejected      INTEGER NOT NULL DEFAULT 0,
    cold          INTEGER NOT NULL DEFAULT 0,
    total_ms      REAL NOT NULL DEFAULT 0,
    max_ms        REAL NOT NULL DEFAULT 0,
    -- The most calls in flight at once in the minute: of this version, of
    -- the function (all versions), of the application.
    peak          INTEGER NOT NULL DEFAULT 0,
    function_peak INTEGER NOT NULL DEFAULT 0,
    app_peak      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (app, function, version, minute)
);
CREATE INDEX stats_minutes_by_minute ON stats_minutes (minute);
CREATE INDEX stats_minutes_by_function ON stats_minutes (function, minute);

CREATE TABLE stats_counts (
    app      TEXT NOT NULL,
    function TEXT NOT NULL,
    version  INTEGER NOT NULL,
    minute   INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    key      TEXT NOT NULL,
    count    INTEGER NOT NULL,
    PRIMARY KEY (app, function, version, minute, kind, key)
);
CREATE INDEX stats_counts_by_minute ON stats_counts (minute);
CREATE INDEX stats_counts_by_function ON stats_counts (function, minute);
