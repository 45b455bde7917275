-- Function management: taking a function offline, deleting it (its
-- versions and release history stay), and its information (category,
-- description) kept apart from its versions.
-- 1 while the function is offline: every call is refused, its live
-- version and aliases stay.
ALTER TABLE functions ADD COLUMN offline INTEGER NOT NULL DEFAULT 0;
-- When it was deleted (NULL: it is not); a deploy or publish brings it back.
ALTER TABLE functions ADD COLUMN deleted_at INTEGER;
-- What the hearth.toml said of category and description when they were
-- last taken from one: a publish takes them again only when its version's
-- hearth.toml says something else, so `hearth edit` survives redeploys
-- that leave those keys alone.
ALTER TABLE functions ADD COLUMN manifest_category TEXT NOT NULL DEFAULT '';
ALTER TABLE functions ADD COLUMN manifest_description TEXT NOT NULL DEFAULT '';
UPDATE functions SET manifest_category = category, manifest_description = description;
