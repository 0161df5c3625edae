-- Custom domains: a user's own hostname on an app, proven by TXT _wisehosting.<hostname>.
CREATE TYPE domain_status AS ENUM ('pending', 'verified', 'failed');

CREATE TABLE domains (
    id               BIGSERIAL PRIMARY KEY,
    app_id           BIGINT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    -- ASCII (punycode), lowercase, no trailing dot; unique across the platform.
    hostname         TEXT NOT NULL UNIQUE CHECK (hostname = lower(hostname) AND length(hostname) <= 253),
    token            TEXT NOT NULL,
    status           domain_status NOT NULL DEFAULT 'pending',
    -- A verified domain whose record disappeared: still served, flagged for its owner.
    record_missing   BOOLEAN NOT NULL DEFAULT false,
    last_outcome     TEXT,
    reason           TEXT,
    last_checked_at  TIMESTAMPTZ,
    next_check_at    TIMESTAMPTZ DEFAULT now() + interval '5 minutes',
    verified_at      TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX domains_app_idx ON domains (app_id);
CREATE INDEX domains_due_idx ON domains (next_check_at) WHERE status IN ('pending', 'verified');

-- Verified domains join their app's router: routing changes when domains do.
CREATE TRIGGER domains_routes AFTER INSERT OR UPDATE OR DELETE ON domains
    FOR EACH STATEMENT EXECUTE FUNCTION wh_notify_routes();
