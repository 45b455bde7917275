-- Saved function templates (`hearth template save`): a function version's
-- files with its name and app made placeholders ({{name}}, {{app}}), and
-- where they came from. Built-in templates are in the binary, not here.
CREATE TABLE templates (
    name            TEXT PRIMARY KEY,
    description     TEXT NOT NULL DEFAULT '',
    runtime         TEXT NOT NULL,
    -- The function type it makes: function, datasource, field.
    kind            TEXT NOT NULL DEFAULT 'function',
    -- The function and version it was saved from, and its application.
    from_function   TEXT NOT NULL,
    from_version    INTEGER NOT NULL,
    app             TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    -- The name of the token that saved it.
    created_by      TEXT NOT NULL DEFAULT ''
);

CREATE TABLE template_files (
    template   TEXT NOT NULL REFERENCES templates (name) ON DELETE CASCADE,
    path       TEXT NOT NULL,
    executable INTEGER NOT NULL DEFAULT 0,
    content    BLOB NOT NULL,
    PRIMARY KEY (template, path)
);
