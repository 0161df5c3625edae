-- The GitHub App the operator created through the manifest flow: its ids and, sealed (the
-- wh/oauth/v1 key, the row id as associated data), a JSON of its private key, client secret and
-- webhook secret. One per GitHub (github.com or an Enterprise Server).
CREATE TABLE github_apps (
    id             BIGSERIAL PRIMARY KEY,
    base_url       TEXT NOT NULL UNIQUE CHECK (length(base_url) <= 300),
    app_id         BIGINT NOT NULL,
    slug           TEXT NOT NULL CHECK (length(slug) <= 100),
    html_url       TEXT NOT NULL CHECK (length(html_url) <= 300),
    client_id      TEXT NOT NULL CHECK (length(client_id) <= 100),
    secrets_sealed BYTEA NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A connection through an installation of that App: tokens are minted per use, none stored.
ALTER TABLE git_connections ADD COLUMN installation_id BIGINT;

-- What an OAuth state is for: connecting by OAuth, creating the App, installing it.
CREATE TYPE oauth_purpose AS ENUM ('connect', 'app_manifest', 'app_install');
ALTER TABLE git_oauth_states ADD COLUMN purpose oauth_purpose NOT NULL DEFAULT 'connect';

-- Pushes deploy unless the app turns it off (previews and deploys by hand still do).
ALTER TABLE apps ADD COLUMN auto_deploy BOOLEAN NOT NULL DEFAULT true;
