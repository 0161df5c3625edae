-- Usage in 5-minute buckets per app, in day partitions kept 90 days: CPU core-seconds, memory
-- byte-seconds and peak, network bytes, peak disk. `minutes` has bit i set once minute i of
-- the bucket was recorded, so recording a minute again changes nothing.
CREATE TABLE usage_buckets (
    app_id              BIGINT NOT NULL,
    bucket              TIMESTAMPTZ NOT NULL,
    cpu_seconds         DOUBLE PRECISION NOT NULL DEFAULT 0,
    memory_byte_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    memory_peak         BIGINT NOT NULL DEFAULT 0,
    net_rx_bytes        BIGINT NOT NULL DEFAULT 0,
    net_tx_bytes        BIGINT NOT NULL DEFAULT 0,
    disk_peak           BIGINT NOT NULL DEFAULT 0,
    minutes             SMALLINT NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, bucket)
) PARTITION BY RANGE (bucket);

-- The network counters each container had when last recorded (deltas; a smaller value is a
-- reset, counted from zero).
CREATE TABLE usage_counters (
    container_id TEXT PRIMARY KEY,
    net_rx_bytes BIGINT NOT NULL,
    net_tx_bytes BIGINT NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL
);

-- How many apps (previews not counted) a user may have; an administrator can change it.
ALTER TABLE users ADD COLUMN max_apps INTEGER NOT NULL DEFAULT 20 CHECK (max_apps >= 0);
