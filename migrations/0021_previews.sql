-- Preview deploys of pull requests: an app may have them (off by default), each one an app of
-- its own (`pr-<n>-<slug>`) pointing at the app it previews; the plan bounds how many.
ALTER TABLE plans ADD COLUMN max_previews INTEGER NOT NULL DEFAULT 3 CHECK (max_previews >= 0);
UPDATE plans SET max_previews = CASE name WHEN 'hobby' THEN 2 WHEN 'standard' THEN 5 WHEN 'pro' THEN 20 ELSE 3 END;

ALTER TABLE apps
    ADD COLUMN previews       BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN preview_of     BIGINT REFERENCES apps (id) ON DELETE CASCADE,
    ADD COLUMN preview_number INTEGER CHECK (preview_number > 0),
    ADD CONSTRAINT apps_preview_once UNIQUE (preview_of, preview_number),
    ADD CONSTRAINT apps_preview_whole CHECK ((preview_of IS NULL) = (preview_number IS NULL));

-- A preview's name is longer than a name a user picks (3–40): up to a DNS label's 63.
ALTER TABLE apps DROP CONSTRAINT apps_slug_check;
ALTER TABLE apps ADD CONSTRAINT apps_slug_check CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{1,61})[a-z0-9]$');

-- Variables only previews get, over the app's own (sealed with the env key, the app id as
-- associated data, like env_vars).
CREATE TABLE preview_env_vars (
    app_id       BIGINT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    key          TEXT NOT NULL CHECK (key ~ '^[A-Za-z_][A-Za-z0-9_]*$'),
    value_sealed BYTEA NOT NULL,
    PRIMARY KEY (app_id, key)
);
