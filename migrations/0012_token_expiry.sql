-- Personal API tokens can expire; a revoked token is deleted.
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);
