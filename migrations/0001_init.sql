-- First schema: enough for workers, apps, deployments and the job queue to start.
-- Later issues add their own tables in later migrations; never edit an applied migration.

CREATE TABLE plans (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    cpu_millis  INTEGER NOT NULL CHECK (cpu_millis > 0),
    memory_mb   INTEGER NOT NULL CHECK (memory_mb > 0),
    disk_mb     INTEGER NOT NULL CHECK (disk_mb > 0),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

INSERT INTO plans (name, cpu_millis, memory_mb, disk_mb) VALUES
    ('hobby',    500,  512,  2048),
    ('standard', 1000, 1024, 5120),
    ('pro',      2000, 4096, 20480);

CREATE TABLE users (
    id             BIGSERIAL PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    is_admin       BOOLEAN NOT NULL DEFAULT false,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE workers (
    id            UUID PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    mesh_ip       INET NOT NULL,
    -- SHA-256 (hex) of the raw API key; the raw key is never stored.
    api_key_hash  TEXT NOT NULL,
    enabled       BOOLEAN NOT NULL DEFAULT true,
    last_seen_at  TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE apps (
    id          BIGSERIAL PRIMARY KEY,
    owner_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    slug        TEXT NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{1,38})[a-z0-9]$'),
    repo_url    TEXT NOT NULL,
    branch      TEXT NOT NULL DEFAULT 'main',
    plan_id     BIGINT NOT NULL REFERENCES plans (id),
    port        INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    -- Where the live deployment runs; NULL until the first deploy goes live.
    worker_id   UUID REFERENCES workers (id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TYPE deployment_state AS ENUM
    ('queued', 'building', 'starting', 'healthy', 'live', 'failed', 'cancelled', 'superseded');

CREATE TABLE deployments (
    id              BIGSERIAL PRIMARY KEY,
    app_id          BIGINT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    git_ref         TEXT NOT NULL,
    commit_sha      TEXT,
    state           deployment_state NOT NULL DEFAULT 'queued',
    -- Hard deadline of the current state: no deployment stays in progress forever.
    state_deadline  TIMESTAMPTZ,
    worker_id       UUID REFERENCES workers (id) ON DELETE SET NULL,
    host_port       INTEGER,
    error           TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX deployments_app_idx ON deployments (app_id, created_at DESC);

CREATE TYPE job_state AS ENUM ('pending', 'claimed', 'succeeded', 'failed', 'cancelled');

-- The job queue: claimed with UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED LIMIT 1).
CREATE TABLE jobs (
    id                BIGSERIAL PRIMARY KEY,
    kind              TEXT NOT NULL,
    payload           JSONB NOT NULL DEFAULT '{}',
    deployment_id     BIGINT REFERENCES deployments (id) ON DELETE CASCADE,
    state             job_state NOT NULL DEFAULT 'pending',
    run_after         TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Fencing token: incremented by every claim; a result carrying an older attempt is rejected.
    attempt           INTEGER NOT NULL DEFAULT 0,
    claimed_by        TEXT,
    lease_expires_at  TIMESTAMPTZ,
    error             TEXT,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at       TIMESTAMPTZ
);
CREATE INDEX jobs_pending_idx ON jobs (run_after, id) WHERE state = 'pending';
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE state = 'claimed';
