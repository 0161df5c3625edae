-- Disk a container has written (its writable layer), sampled by its worker about every minute.
ALTER TABLE containers ADD COLUMN disk_bytes BIGINT;
