-- Applications are resource partitions: each may have a budget of workers,
-- memory and CPU shared by all its functions (0: no limit).
ALTER TABLE applications ADD COLUMN max_workers INTEGER NOT NULL DEFAULT 0;
ALTER TABLE applications ADD COLUMN memory_mb INTEGER NOT NULL DEFAULT 0;
ALTER TABLE applications ADD COLUMN cpu_percent INTEGER NOT NULL DEFAULT 0;
