-- Sessions, API tokens, encrypted env vars and the audit trail for the user-facing API.

CREATE TABLE sessions (
    -- SHA-256 (hex) of the session cookie value; the cookie itself is never stored.
    token_hash  TEXT PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX sessions_user_idx ON sessions (user_id);

CREATE TABLE api_tokens (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    -- SHA-256 (hex) of the token; shown once at creation.
    token_hash  TEXT NOT NULL UNIQUE,
    last_used_at TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE env_vars (
    app_id      BIGINT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    key         TEXT NOT NULL CHECK (key ~ '^[A-Za-z_][A-Za-z0-9_]*$'),
    -- AES-256-GCM (purpose wh/env/v1, associated data: the app id); never plaintext.
    value_sealed BYTEA NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, key)
);

CREATE TABLE audit_events (
    id          BIGSERIAL PRIMARY KEY,
    actor_id    BIGINT REFERENCES users (id) ON DELETE SET NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    client_ip   INET,
    details     JSONB NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_id, created_at DESC);
