-- What the proxies said of each host's certificate (their order outcomes): the last state per
-- host, so an event is written when it changes (a renewal is a new `not_after`), not for every
-- retry of a failing order.
CREATE TABLE certificates (
    hostname   TEXT PRIMARY KEY CHECK (hostname = lower(hostname) AND length(hostname) <= 253),
    app_id     BIGINT REFERENCES apps (id) ON DELETE CASCADE,
    issued     BOOLEAN NOT NULL,
    not_after  TIMESTAMPTZ,
    error      TEXT,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
