-- How many bytes of build output a deployment has had in all: build_log keeps only the tail,
-- and a client following the log asks for what came after the offset it last saw.
ALTER TABLE deployments ADD COLUMN build_log_total BIGINT NOT NULL DEFAULT 0;
UPDATE deployments SET build_log_total = octet_length(build_log);
