-- Wake claimers as soon as a job is enqueued: NOTIFY on the jobs channel in the inserting
-- transaction (delivered at commit). Claimers still poll at most every second in case a
-- notification is lost (a listener reconnecting, for instance).
CREATE FUNCTION wh_notify_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('wh_jobs', NEW.id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_notify AFTER INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION wh_notify_job();
