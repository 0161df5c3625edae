-- Inbound git webhooks: one per app and provider, each with its own secret (sealed with the
-- wh/githook/v1 key, the row id as associated data); deliveries remembered by their id for
-- 24 h so a replay deploys nothing.
CREATE TYPE git_provider AS ENUM ('github', 'gitlab', 'bitbucket', 'gitea', 'forgejo');

CREATE TABLE git_hooks (
    id               BIGSERIAL PRIMARY KEY,
    -- In the hook's URL; random, 32 hex digits.
    public_id        TEXT NOT NULL UNIQUE CHECK (public_id ~ '^[0-9a-f]{32}$'),
    app_id           BIGINT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    provider         git_provider NOT NULL,
    secret_sealed    BYTEA NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_delivery_at TIMESTAMPTZ,
    UNIQUE (app_id, provider)
);

CREATE TABLE git_hook_deliveries (
    hook_id     BIGINT NOT NULL REFERENCES git_hooks (id) ON DELETE CASCADE,
    delivery_id TEXT NOT NULL CHECK (length(delivery_id) BETWEEN 1 AND 200),
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (hook_id, delivery_id)
);

-- A push deploys its exact commit; these say which one it was.
ALTER TABLE deployments
    ADD COLUMN commit_message TEXT,
    ADD COLUMN commit_author  TEXT;

-- Pushes of tags deploy only when the app asks for it.
ALTER TABLE apps ADD COLUMN deploy_tags BOOLEAN NOT NULL DEFAULT false;
