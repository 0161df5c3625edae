-- Tell proxy-config watchers that the routing configuration may have changed: any change to
-- deployments, apps or workers NOTIFYs 'wh_routes' (delivered at commit; coalesced by listeners).
CREATE FUNCTION wh_notify_routes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('wh_routes', TG_TABLE_NAME);
    RETURN NULL;
END;
$$;

CREATE TRIGGER deployments_routes AFTER INSERT OR UPDATE OR DELETE ON deployments
    FOR EACH STATEMENT EXECUTE FUNCTION wh_notify_routes();
CREATE TRIGGER apps_routes AFTER INSERT OR UPDATE OR DELETE ON apps
    FOR EACH STATEMENT EXECUTE FUNCTION wh_notify_routes();
CREATE TRIGGER workers_routes AFTER INSERT OR UPDATE OR DELETE ON workers
    FOR EACH STATEMENT EXECUTE FUNCTION wh_notify_routes();
