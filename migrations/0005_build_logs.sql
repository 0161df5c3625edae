-- Build output is kept with its deployment (the last 1 MiB); runtime logs live in the control
-- plane's in-memory log bus.
ALTER TABLE deployments ADD COLUMN build_log TEXT NOT NULL DEFAULT '';
