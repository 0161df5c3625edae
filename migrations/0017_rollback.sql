-- A redeploy or rollback runs an earlier deployment's image again.
-- rollback_of: the deployment the user asked for; image_of: the deployment whose build made
-- the image that runs (NULL: its own build), which is what a later rollback to it looks for.
ALTER TABLE deployments
    ADD COLUMN rollback_of BIGINT REFERENCES deployments (id) ON DELETE SET NULL,
    ADD COLUMN image_of    BIGINT REFERENCES deployments (id) ON DELETE SET NULL;
