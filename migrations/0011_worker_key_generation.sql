-- Rotating a worker's key bumps its generation: tokens (the `gen` claim) and channel keys of an
-- older generation stop working. `api_key_hash` now holds a lookup hash, never a signing key
-- (rows still holding the old SHA-256 of the key are rewritten at that worker's next register).
ALTER TABLE workers ADD COLUMN key_generation integer NOT NULL DEFAULT 1;
