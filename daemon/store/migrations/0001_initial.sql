-- hearth store, schema 1. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE applications (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE functions (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    runtime      TEXT NOT NULL,
    app_id       INTEGER NOT NULL REFERENCES applications(id),
    category     TEXT NOT NULL DEFAULT '',
    description  TEXT NOT NULL DEFAULT '',
    -- 'draft' until a version is published, then 'live'.
    state        TEXT NOT NULL DEFAULT 'draft',
    live_version INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

CREATE TABLE versions (
    id           INTEGER PRIMARY KEY,
    function_id  INTEGER NOT NULL REFERENCES functions(id),
    number       INTEGER NOT NULL,
    hash         TEXT NOT NULL,
    -- the version's hearth.toml, parsed, as JSON (runtime, entry, limits...)
    manifest     TEXT NOT NULL,
    message      TEXT NOT NULL DEFAULT '',
    size_bytes   INTEGER NOT NULL,
    file_count   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    UNIQUE (function_id, number),
    UNIQUE (function_id, hash)
);

CREATE TABLE version_files (
    version_id  INTEGER NOT NULL REFERENCES versions(id),
    path        TEXT NOT NULL,
    executable  INTEGER NOT NULL DEFAULT 0,
    content     BLOB NOT NULL,
    PRIMARY KEY (version_id, path)
);

-- Every change of the live version: publish, rollback (and later alias moves).
CREATE TABLE releases (
    id            INTEGER PRIMARY KEY,
    function_id   INTEGER NOT NULL REFERENCES functions(id),
    version       INTEGER NOT NULL,
    from_version  INTEGER,
    action        TEXT NOT NULL,
    message       TEXT NOT NULL DEFAULT '',
    actor         TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL
);

CREATE INDEX releases_by_function ON releases (function_id, id);
