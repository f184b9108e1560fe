-- The claim statements, as functions so that their plan never depends on table statistics.
-- A job table swings between empty and huge faster than ANALYZE follows; with stale
-- statistics the planner chose a bitmap scan plus a sort of every waiting job (40 ms per claim
-- at 100,000 jobs) instead of walking ferry_jobs_claim in order and stopping after n rows.
-- Turning off sorts, bitmap and sequential scans leaves the index walk as the plan; turning off
-- hash and merge joins keeps the UPDATE a nested loop over the picked ctids (a generic plan
-- can not see the LIMIT, guessed 16,000 picked rows and hash-joined them against a sequential
-- scan of a million jobs: 240 ms per claim).
-- PL/pgSQL keeps each session's plan, and a forced generic plan is never re-planned, so a
-- claim of one job costs no planning.
-- The UPDATE finds the picked rows by ctid: they are locked, so it cannot change, and it
-- saves a primary-key descent per job.

CREATE FUNCTION ferry_claim(p_queue text, p_now bigint, p_n bigint, p_owner text, p_lease_until bigint)
RETURNS TABLE (id uuid, queue text, kind text, payload text, priority smallint, vt bigint,
               attempt integer, max_attempts integer, group_key text, singleton_key text,
               created_at bigint)
LANGUAGE plpgsql VOLATILE
SET enable_sort = off SET enable_bitmapscan = off SET enable_seqscan = off
SET enable_hashjoin = off SET enable_mergejoin = off SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH picked AS (
        SELECT j.ctid FROM ferry_jobs j
        WHERE j.queue = p_queue AND j.state IN ('queued', 'retrying') AND j.run_at <= p_now
          AND (j.expires_at IS NULL OR j.expires_at > p_now)
          AND NOT EXISTS (SELECT 1 FROM ferry_queues q WHERE q.name = p_queue AND q.paused)
        ORDER BY j.priority DESC, j.vt, j.id
        LIMIT p_n
        FOR UPDATE SKIP LOCKED
    )
    UPDATE ferry_jobs AS j SET state = 'running', attempt = j.attempt + 1, lease_owner = p_owner,
        lease_until = p_lease_until, started_at = p_now
    FROM picked WHERE j.ctid = picked.ctid
    RETURNING j.id, j.queue, j.kind, j.payload::text, j.priority, j.vt, j.attempt,
        j.max_attempts, j.group_key, j.singleton_key, j.created_at;
END
$$;

-- With group caps. Claims of one capped queue take turns (a transaction-scoped advisory lock,
-- released at the end of the calling statement) so two claimers cannot both see room for a
-- group's last slot; the claim after the lock sees every earlier claim (a volatile function's
-- statements each take a fresh snapshot in READ COMMITTED).
CREATE FUNCTION ferry_claim_capped(p_queue text, p_now bigint, p_n bigint, p_owner text,
                                   p_lease_until bigint, p_window bigint)
RETURNS TABLE (id uuid, queue text, kind text, payload text, priority smallint, vt bigint,
               attempt integer, max_attempts integer, group_key text, singleton_key text,
               created_at bigint)
LANGUAGE plpgsql VOLATILE
SET enable_sort = off SET enable_bitmapscan = off SET enable_seqscan = off
SET enable_hashjoin = off SET enable_mergejoin = off SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('ferry_claim:' || p_queue, 0));
    RETURN QUERY
    WITH running AS (
        SELECT r.group_key, count(*) AS n FROM ferry_jobs r
        WHERE r.queue = p_queue AND r.state = 'running' GROUP BY r.group_key
    ), caps AS (
        SELECT g.group_key, g.max_running AS cap FROM ferry_group_limits g WHERE g.queue = p_queue
    ), qcap AS (
        SELECT group_max_running AS cap FROM ferry_queues WHERE name = p_queue
    ), full_groups AS (
        SELECT r.group_key FROM running r LEFT JOIN caps c ON c.group_key = r.group_key
        WHERE r.n >= COALESCE(c.cap, (SELECT cap FROM qcap))
    ), cand AS (
        SELECT j.ctid, j.id, j.group_key, j.priority, j.vt FROM ferry_jobs j
        WHERE j.queue = p_queue AND j.state IN ('queued', 'retrying') AND j.run_at <= p_now
          AND (j.expires_at IS NULL OR j.expires_at > p_now)
          AND NOT EXISTS (SELECT 1 FROM ferry_queues q WHERE q.name = p_queue AND q.paused)
          AND j.group_key NOT IN (SELECT group_key FROM full_groups)
        ORDER BY j.priority DESC, j.vt, j.id
        LIMIT p_window
        FOR UPDATE SKIP LOCKED
    ), ranked AS (
        SELECT c.ctid, c.id, c.priority, c.vt,
            row_number() OVER (PARTITION BY c.group_key ORDER BY c.priority DESC, c.vt, c.id) AS rn,
            COALESCE(cp.cap, (SELECT cap FROM qcap)) - COALESCE(r.n, 0) AS room
        FROM cand c LEFT JOIN caps cp ON cp.group_key = c.group_key
            LEFT JOIN running r ON r.group_key = c.group_key
    ), picked AS (
        SELECT r.ctid FROM ranked r WHERE r.room IS NULL OR r.rn <= r.room
        ORDER BY r.priority DESC, r.vt, r.id LIMIT p_n
    )
    UPDATE ferry_jobs AS j SET state = 'running', attempt = j.attempt + 1, lease_owner = p_owner,
        lease_until = p_lease_until, started_at = p_now
    FROM picked WHERE j.ctid = picked.ctid
    RETURNING j.id, j.queue, j.kind, j.payload::text, j.priority, j.vt, j.attempt,
        j.max_attempts, j.group_key, j.singleton_key, j.created_at;
END
$$;

-- Acknowledgements and heartbeats of one worker may touch the same rows at once. Both find
-- them through the primary key with `id = ANY(…)`, which visits the sorted keys in order, so
-- they lock in the same order and never deadlock; with bitmap scans off the planner can not
-- switch to a heap-order plan (it liked ANDing the primary key with ferry_jobs_running).
CREATE FUNCTION ferry_complete(p_ids uuid[], p_owner text, p_now bigint, p_delete boolean)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET enable_bitmapscan = off SET enable_seqscan = off SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    n bigint;
BEGIN
    IF p_delete THEN
        DELETE FROM ferry_jobs WHERE id = ANY(p_ids) AND state = 'running' AND lease_owner = p_owner;
    ELSE
        UPDATE ferry_jobs SET state = 'completed', finished_at = p_now, lease_until = NULL
        WHERE id = ANY(p_ids) AND state = 'running' AND lease_owner = p_owner;
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

CREATE FUNCTION ferry_heartbeat(p_ids uuid[], p_owner text, p_lease_until bigint)
RETURNS TABLE (id uuid, cancel_requested boolean)
LANGUAGE plpgsql VOLATILE
SET enable_bitmapscan = off SET enable_seqscan = off SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    UPDATE ferry_jobs SET lease_until = p_lease_until
    WHERE id = ANY(p_ids) AND state = 'running' AND lease_owner = p_owner
    RETURNING id, cancel_requested;
END
$$;
