-- Git providers a user connected by OAuth: the account at the provider and its tokens (a JSON
-- {access, refresh} sealed with the wh/oauth/v1 key, the row id as associated data), refreshed
-- before `expires_at`.
CREATE TABLE git_connections (
    id           BIGSERIAL PRIMARY KEY,
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider     git_provider NOT NULL,
    -- The provider's web address the connection was made at (gitlab.com or a self-managed one).
    base_url     TEXT NOT NULL CHECK (length(base_url) <= 300),
    account      TEXT NOT NULL CHECK (length(account) <= 200),
    account_id   TEXT NOT NULL CHECK (length(account_id) <= 200),
    tokens_sealed BYTEA NOT NULL,
    -- When the access token stops working; NULL: it does not expire (GitHub OAuth Apps).
    expires_at   TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    refreshed_at TIMESTAMPTZ,
    UNIQUE (user_id, provider, base_url, account_id)
);

-- OAuth authorizations under way: the SHA-256 of the `state` sent to the provider, whose user
-- started it; used once, within 10 minutes.
CREATE TABLE git_oauth_states (
    state_hash  TEXT PRIMARY KEY CHECK (state_hash ~ '^[0-9a-f]{64}$'),
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider    git_provider NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- An app made from a provider's repository: the connection that reads it and the repository's
-- name there (`owner/name`, a GitLab project path, a Bitbucket `workspace/slug`).
ALTER TABLE apps
    ADD COLUMN git_connection_id BIGINT REFERENCES git_connections (id) ON DELETE SET NULL,
    ADD COLUMN git_repo TEXT CHECK (length(git_repo) <= 300);

-- A hook the control plane registered through the provider's API: its id there, to remove it.
ALTER TABLE git_hooks ADD COLUMN remote_id TEXT CHECK (length(remote_id) <= 100);

-- Deployments whose state goes back to the provider as a commit status: which state was last
-- reported, and when to try again after a failed report.
ALTER TABLE deployments
    ADD COLUMN report_status  BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN reported_state TEXT,
    ADD COLUMN report_after   TIMESTAMPTZ,
    ADD COLUMN report_failures INT NOT NULL DEFAULT 0;
CREATE INDEX deployments_to_report ON deployments (id) WHERE report_status;
