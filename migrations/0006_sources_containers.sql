-- Deploys from an uploaded archive (`wh deploy --path`), and what workers report they run.

-- A deployment's source: a git ref of the app's repository, or an uploaded tar.gz kept until
-- the deployment ends (the worker downloads it with its JWT).
CREATE TABLE deployment_sources (
    deployment_id  BIGINT PRIMARY KEY REFERENCES deployments (id) ON DELETE CASCADE,
    archive        BYTEA NOT NULL,
    sha256         TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Containers as workers last reported them (inventory on connect, events, stats every 10 s).
-- Ephemeral observations, rebuilt from the workers' reports; never the source of routing.
CREATE TABLE containers (
    container_id   TEXT PRIMARY KEY,
    worker_id      UUID NOT NULL REFERENCES workers (id) ON DELETE CASCADE,
    app_id         BIGINT REFERENCES apps (id) ON DELETE CASCADE,
    deployment_id  BIGINT REFERENCES deployments (id) ON DELETE CASCADE,
    state          TEXT NOT NULL,
    restarts       INTEGER NOT NULL DEFAULT 0,
    exit_code      INTEGER,
    cpu_percent    DOUBLE PRECISION,
    memory_bytes   BIGINT,
    memory_limit   BIGINT,
    net_rx_bytes   BIGINT,
    net_tx_bytes   BIGINT,
    block_read     BIGINT,
    block_write    BIGINT,
    stats_at       TIMESTAMPTZ,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX containers_app_idx ON containers (app_id);
