-- Deploy jobs are typed (wh_wsproto::job::DeployJob): a git source says so. Rows written before
-- carried only repo_url and ref.
UPDATE jobs SET payload = payload || '{"source": "git"}'::jsonb
 WHERE kind = 'deploy' AND NOT payload ? 'source';
