-- Age retention walks the oldest records by seq (the primary key), which
-- follows arrival: one index less to update on every insert.
DROP INDEX IF EXISTS calls_started_at;
