-- A hostname is held by whoever verified it, not by whoever added it first: several apps may
-- have a pending claim on one hostname, and at most one claim is verified. The claim that is
-- verified removes the others.
ALTER TABLE domains DROP CONSTRAINT domains_hostname_key;
ALTER TABLE domains ADD CONSTRAINT domains_app_hostname_key UNIQUE (app_id, hostname);
CREATE UNIQUE INDEX domains_verified_hostname_idx ON domains (hostname) WHERE status = 'verified';
CREATE INDEX domains_hostname_idx ON domains (hostname);
