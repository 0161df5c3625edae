-- Credentials of a repository URL (`https://user:token@host/…`) are sealed here (AES-GCM, the
-- env key, the app id as associated data); repo_url keeps only the URL without them.
ALTER TABLE apps ADD COLUMN repo_auth_sealed bytea;
