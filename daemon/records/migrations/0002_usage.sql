-- Bytes of records kept per function, kept up to date by every insert and
-- delete, so the size limit is checked without summing the table.
CREATE TABLE usage (
    function TEXT PRIMARY KEY,
    bytes INTEGER NOT NULL
);
INSERT INTO usage (function, bytes) SELECT function, SUM(bytes) FROM calls GROUP BY function;
