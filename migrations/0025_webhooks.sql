-- Outbound webhooks and notification channels: the targets a user chose, one delivery per
-- (target, event) claimed from the outbox with SKIP LOCKED, and every attempt's outcome.
-- Deploys, domains and crashes write their events here by trigger, in the transaction that
-- changed them, so no path that changes a state can forget its event.
CREATE TYPE target_kind AS ENUM ('webhook', 'channel');
CREATE TABLE notify_targets (
    id                     BIGSERIAL PRIMARY KEY,
    user_id                BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- NULL: every app of the user.
    app_id                 BIGINT REFERENCES apps (id) ON DELETE CASCADE,
    kind                   target_kind NOT NULL,
    -- `webhook`, or the channel's service (`discord`, `smtp`, ...).
    service                TEXT NOT NULL CHECK (service ~ '^[a-z]+$'),
    -- The URL with its secrets masked, to show; the URL itself is sealed (wh/target-url/v1).
    display                TEXT NOT NULL,
    url_sealed             BYTEA NOT NULL,
    -- Webhooks only: the signing secret (wh/webhook/v1), and the one it replaced, still used
    -- alongside until `previous_until`.
    secret_sealed          BYTEA,
    previous_secret_sealed BYTEA,
    previous_until         TIMESTAMPTZ,
    events                 TEXT[] NOT NULL,
    enabled                BOOLEAN NOT NULL DEFAULT true,
    disabled_reason        TEXT,
    failing_since          TIMESTAMPTZ,
    consecutive_failures   INTEGER NOT NULL DEFAULT 0,
    created_at             TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX notify_targets_user_idx ON notify_targets (user_id);

-- Events not yet turned into deliveries.
ALTER TABLE event_outbox ADD COLUMN fanned_out_at TIMESTAMPTZ;
CREATE INDEX event_outbox_pending ON event_outbox (id) WHERE fanned_out_at IS NULL;
-- Events older than this were fanned out before any target existed.
UPDATE event_outbox SET fanned_out_at = now();

CREATE TYPE delivery_state AS ENUM ('pending', 'succeeded', 'failed');
CREATE TABLE deliveries (
    id              BIGSERIAL PRIMARY KEY,
    target_id       BIGINT NOT NULL REFERENCES notify_targets (id) ON DELETE CASCADE,
    -- The same across attempts (the receiver's idempotency key).
    event_id        UUID NOT NULL,
    event_type      TEXT NOT NULL,
    -- `{type, timestamp, data}` as delivered.
    body            JSONB NOT NULL,
    state           delivery_state NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Held by a dispatcher until then; an attempt whose process died is claimed again after.
    lease_until     TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at     TIMESTAMPTZ,
    UNIQUE (target_id, event_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_target_idx ON deliveries (target_id, id DESC);

CREATE TABLE delivery_attempts (
    delivery_id BIGINT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    duration_ms INTEGER NOT NULL,
    -- NULL when no answer came.
    status      INTEGER,
    error       TEXT,
    -- The first 64 KiB of the answer's body.
    response    TEXT,
    PRIMARY KEY (delivery_id, attempt)
);

CREATE FUNCTION wh_event(kind TEXT, app BIGINT, data JSONB) RETURNS void AS $$
    INSERT INTO event_outbox (event_type, app_id, user_id, payload)
    SELECT kind, a.id, a.owner_id, data || jsonb_build_object('app', a.slug, 'app_id', a.id)
    FROM apps a WHERE a.id = app;
$$ LANGUAGE sql;

CREATE FUNCTION wh_deployment_events() RETURNS trigger AS $$
DECLARE
    kind TEXT;
BEGIN
    IF NEW.state = OLD.state THEN
        RETURN NEW;
    END IF;
    kind := CASE
        WHEN OLD.state = 'queued' AND NEW.state IN ('building', 'starting', 'healthy') THEN 'deployment.started'
        WHEN NEW.state = 'live' THEN 'deployment.succeeded'
        WHEN NEW.state = 'failed' THEN 'deployment.failed'
    END;
    IF kind IS NOT NULL THEN
        PERFORM wh_event(kind, NEW.app_id, jsonb_build_object(
            'deployment_id', NEW.id, 'git_ref', NEW.git_ref, 'commit', NEW.commit_sha,
            'state', NEW.state, 'error', NEW.error));
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER deployments_events AFTER UPDATE OF state ON deployments
    FOR EACH ROW EXECUTE FUNCTION wh_deployment_events();

CREATE FUNCTION wh_domain_events() RETURNS trigger AS $$
BEGIN
    IF NEW.status = 'verified' AND (TG_OP = 'INSERT' OR OLD.status <> 'verified') THEN
        PERFORM wh_event('domain.verified', NEW.app_id, jsonb_build_object('hostname', NEW.hostname));
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER domains_events AFTER INSERT OR UPDATE OF status ON domains
    FOR EACH ROW EXECUTE FUNCTION wh_domain_events();

CREATE FUNCTION wh_crash_events() RETURNS trigger AS $$
BEGIN
    PERFORM wh_event('app.crashed', NEW.app_id, jsonb_build_object('at', NEW.at));
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER container_restarts_events AFTER INSERT ON container_restarts
    FOR EACH ROW EXECUTE FUNCTION wh_crash_events();
