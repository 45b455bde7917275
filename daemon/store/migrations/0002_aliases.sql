-- Aliases: named pointers to a version (prod, canary, ...), optionally
-- splitting traffic with a second version by weight.
CREATE TABLE aliases (
    function_id    INTEGER NOT NULL REFERENCES functions(id),
    name           TEXT NOT NULL,
    version        INTEGER NOT NULL,
    -- the version that gets `weight` percent of the calls, if any
    split_version  INTEGER,
    split_weight   INTEGER NOT NULL DEFAULT 0,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (function_id, name)
);

-- Which alias a release moved ('' for the live version itself).
ALTER TABLE releases ADD COLUMN alias TEXT NOT NULL DEFAULT '';
ALTER TABLE releases ADD COLUMN split_version INTEGER;
ALTER TABLE releases ADD COLUMN split_weight INTEGER NOT NULL DEFAULT 0;
