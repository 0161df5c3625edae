-- Monorepos: the directory an app builds from, and the paths whose changes deploy it (a push
-- that touches none of them does not). Empty: all of the repository.
ALTER TABLE apps
    ADD COLUMN root_dir    TEXT NOT NULL DEFAULT '' CHECK (length(root_dir) <= 200),
    ADD COLUMN watch_paths TEXT[] NOT NULL DEFAULT '{}' CHECK (cardinality(watch_paths) <= 20);
