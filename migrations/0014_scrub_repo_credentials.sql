-- Repository URLs with credentials (`https://user:token@host/…`) were copied into job payloads
-- and audit details before credentials were sealed: scrub that history once. (The apps' own
-- URLs are sealed at start, which needs the master key.)
UPDATE jobs SET payload = jsonb_set(payload, '{repo_url}',
        to_jsonb(regexp_replace(payload->>'repo_url', '^https://[^/@]*@', 'https://')))
  WHERE payload->>'repo_url' ~ '^https://[^/@]*@';
UPDATE audit_events SET details = jsonb_set(details, '{repo_url}',
        to_jsonb(regexp_replace(details->>'repo_url', '^https://[^/@]*@', 'https://')))
  WHERE details->>'repo_url' ~ '^https://[^/@]*@';
