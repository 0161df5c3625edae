-- Alert rules per app and kind, evaluated every 30 s as Prometheus does (`for`,
-- `keep_firing_for`); the alerts they fired; restarts as they happen (for crashloop); and the
-- outbox of events (alert.fired, alert.resolved) the outbound webhooks will deliver from.
CREATE TYPE alert_kind AS ENUM
    ('cpu', 'memory', 'network', 'disk', 'offline', 'crashloop', 'deployment_failed');
CREATE TYPE alert_state AS ENUM ('inactive', 'pending', 'firing');

CREATE TABLE alert_rules (
    id               BIGSERIAL PRIMARY KEY,
    app_id           BIGINT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    kind             alert_kind NOT NULL,
    threshold        DOUBLE PRECISION NOT NULL CHECK (threshold >= 0),
    for_secs         INTEGER NOT NULL DEFAULT 300 CHECK (for_secs >= 0 AND for_secs % 30 = 0 AND for_secs <= 86400),
    keep_firing_secs INTEGER NOT NULL DEFAULT 60 CHECK (keep_firing_secs >= 0 AND keep_firing_secs <= 86400),
    -- Reminders while firing (0: never).
    remind_secs      INTEGER NOT NULL DEFAULT 14400 CHECK (remind_secs >= 0),
    enabled          BOOLEAN NOT NULL DEFAULT true,
    muted_until      TIMESTAMPTZ,
    state            alert_state NOT NULL DEFAULT 'inactive',
    -- When the condition started holding (pending) and, while firing, stopped holding.
    pending_since    TIMESTAMPTZ,
    clear_since      TIMESTAMPTZ,
    last_value       DOUBLE PRECISION,
    evaluated_at     TIMESTAMPTZ,
    -- The network counters (rx + tx) at the last evaluation, for rates.
    last_counter     BIGINT,
    last_counter_at  TIMESTAMPTZ,
    -- Bumped by every evaluation that changes the row: the guard of the next one.
    version          BIGINT NOT NULL DEFAULT 0,
    UNIQUE (app_id, kind)
);

CREATE TABLE alerts (
    id               BIGSERIAL PRIMARY KEY,
    rule_id          BIGINT NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    app_id           BIGINT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    kind             alert_kind NOT NULL,
    value            DOUBLE PRECISION NOT NULL,
    threshold        DOUBLE PRECISION NOT NULL,
    started_at       TIMESTAMPTZ NOT NULL,
    resolved_at      TIMESTAMPTZ,
    -- Fired while offline or crashloop fired for the app: shown, not notified.
    held_back        BOOLEAN NOT NULL DEFAULT false,
    last_notified_at TIMESTAMPTZ
);
-- At most one open alert per rule: a second evaluator's insert conflicts.
CREATE UNIQUE INDEX alerts_open_per_rule ON alerts (rule_id) WHERE resolved_at IS NULL;
CREATE INDEX alerts_app_idx ON alerts (app_id, started_at DESC);

CREATE TABLE container_restarts (
    app_id BIGINT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX container_restarts_idx ON container_restarts (app_id, at);

CREATE TABLE event_outbox (
    id           BIGSERIAL PRIMARY KEY,
    -- One event, the same id across delivery attempts.
    event_id     UUID NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    event_type   TEXT NOT NULL CHECK (event_type ~ '^[a-z_]+\.[a-z_]+$'),
    app_id       BIGINT REFERENCES apps (id) ON DELETE SET NULL,
    user_id      BIGINT REFERENCES users (id) ON DELETE CASCADE,
    payload      JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every app gets the default rules.
CREATE FUNCTION default_alert_rules() RETURNS trigger AS $$
BEGIN
    INSERT INTO alert_rules (app_id, kind, threshold, for_secs, keep_firing_secs) VALUES
        (NEW.id, 'cpu', 80, 300, 60),
        (NEW.id, 'memory', 90, 300, 60),
        (NEW.id, 'network', 10000000, 300, 60),
        (NEW.id, 'disk', 90, 0, 60),
        (NEW.id, 'offline', 0, 60, 0),
        (NEW.id, 'crashloop', 3, 0, 60),
        (NEW.id, 'deployment_failed', 0, 0, 0)
    ON CONFLICT (app_id, kind) DO NOTHING;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER apps_default_alert_rules AFTER INSERT ON apps
    FOR EACH ROW EXECUTE FUNCTION default_alert_rules();
INSERT INTO alert_rules (app_id, kind, threshold, for_secs, keep_firing_secs)
    SELECT a.id, d.kind::alert_kind, d.threshold, d.for_secs, d.keep_firing_secs FROM apps a,
    (VALUES ('cpu', 80, 300, 60), ('memory', 90, 300, 60), ('network', 10000000, 300, 60),
            ('disk', 90, 0, 60), ('offline', 0, 60, 0), ('crashloop', 3, 0, 60),
            ('deployment_failed', 0, 0, 0)) AS d(kind, threshold, for_secs, keep_firing_secs)
    ON CONFLICT (app_id, kind) DO NOTHING;

-- Messages about alerts for the notification channels (the next issue delivers them): alerts
-- of one app that fire within 30 s of each other share one; a reminder is a message of its own.
CREATE TYPE notice_kind AS ENUM ('fired', 'resolved', 'reminder');
CREATE TABLE alert_notices (
    id          BIGSERIAL PRIMARY KEY,
    app_id      BIGINT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    kind        notice_kind NOT NULL,
    alert_ids   BIGINT[] NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    -- Not sent before (the grouping window), and once sent.
    send_after  TIMESTAMPTZ NOT NULL,
    sent_at     TIMESTAMPTZ
);
CREATE INDEX alert_notices_due ON alert_notices (send_after) WHERE sent_at IS NULL;
