-- NOTIFY from inside the statement that inserts the jobs: it is delivered when that statement's
-- transaction commits, without another round trip or transaction. Called from a UNION ALL branch
-- that yields no rows; a volatile function there is always evaluated, once.
CREATE FUNCTION ferry_notify(p_queues text[]) RETURNS integer
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    q text;
BEGIN
    FOREACH q IN ARRAY p_queues LOOP
        PERFORM pg_notify('ferry_jobs', q);
    END LOOP;
    RETURN coalesce(array_length(p_queues, 1), 0);
END
$$;
