-- Job kinds are a Postgres enum, as job states are: a kind the platform does not know cannot be
-- stored. The platform only ever wrote these two (other kinds came from tests, and no worker
-- can run them: they are dropped).
CREATE TYPE job_kind AS ENUM ('deploy', 'retire');
DELETE FROM jobs WHERE kind NOT IN ('deploy', 'retire');
ALTER TABLE jobs ALTER COLUMN kind TYPE job_kind USING kind::job_kind;
