-- The fairness round column was named `vt`; it is `fair_round`: the round of its group's
-- rotation a waiting job is claimed in (see the queue's README). The claim functions name it,
-- so they are made again (their result columns change, hence DROP and CREATE), still with
-- JIT off (0004).
ALTER TABLE ferry_jobs RENAME COLUMN vt TO fair_round;
DROP FUNCTION ferry_claim(text, bigint, bigint, text, bigint);
DROP FUNCTION ferry_claim_capped(text, bigint, bigint, text, bigint, bigint);

CREATE FUNCTION ferry_claim(p_queue text, p_now bigint, p_n bigint, p_owner text, p_lease_until bigint)
RETURNS TABLE (id uuid, queue text, kind text, payload text, priority smallint, fair_round bigint,
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
        ORDER BY j.priority DESC, j.fair_round, j.id
        LIMIT p_n
        FOR UPDATE SKIP LOCKED
    )
    UPDATE ferry_jobs AS j SET state = 'running', attempt = j.attempt + 1, lease_owner = p_owner,
        lease_until = p_lease_until, started_at = p_now
    FROM picked WHERE j.ctid = picked.ctid
    RETURNING j.id, j.queue, j.kind, j.payload::text, j.priority, j.fair_round, j.attempt,
        j.max_attempts, j.group_key, j.singleton_key, j.created_at;
END
$$;

-- With group caps. Claims of one capped queue take turns (a transaction-scoped advisory lock,
-- released at the end of the calling statement) so two claimers cannot both see room for a
-- group's last slot; the claim after the lock sees every earlier claim (a volatile function's
-- statements each take a fresh snapshot in READ COMMITTED).
CREATE FUNCTION ferry_claim_capped(p_queue text, p_now bigint, p_n bigint, p_owner text,
                                   p_lease_until bigint, p_window bigint)
RETURNS TABLE (id uuid, queue text, kind text, payload text, priority smallint, fair_round bigint,
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
        SELECT j.ctid, j.id, j.group_key, j.priority, j.fair_round FROM ferry_jobs j
        WHERE j.queue = p_queue AND j.state IN ('queued', 'retrying') AND j.run_at <= p_now
          AND (j.expires_at IS NULL OR j.expires_at > p_now)
          AND NOT EXISTS (SELECT 1 FROM ferry_queues q WHERE q.name = p_queue AND q.paused)
          AND j.group_key NOT IN (SELECT group_key FROM full_groups)
        ORDER BY j.priority DESC, j.fair_round, j.id
        LIMIT p_window
        FOR UPDATE SKIP LOCKED
    ), ranked AS (
        SELECT c.ctid, c.id, c.priority, c.fair_round,
            row_number() OVER (PARTITION BY c.group_key ORDER BY c.priority DESC, c.fair_round, c.id) AS rn,
            COALESCE(cp.cap, (SELECT cap FROM qcap)) - COALESCE(r.n, 0) AS room
        FROM cand c LEFT JOIN caps cp ON cp.group_key = c.group_key
            LEFT JOIN running r ON r.group_key = c.group_key
    ), picked AS (
        SELECT r.ctid FROM ranked r WHERE r.room IS NULL OR r.rn <= r.room
        ORDER BY r.priority DESC, r.fair_round, r.id LIMIT p_n
    )
    UPDATE ferry_jobs AS j SET state = 'running', attempt = j.attempt + 1, lease_owner = p_owner,
        lease_until = p_lease_until, started_at = p_now
    FROM picked WHERE j.ctid = picked.ctid
    RETURNING j.id, j.queue, j.kind, j.payload::text, j.priority, j.fair_round, j.attempt,
        j.max_attempts, j.group_key, j.singleton_key, j.created_at;
END
$$;

ALTER FUNCTION ferry_claim(text, bigint, bigint, text, bigint) SET jit = off;
ALTER FUNCTION ferry_claim_capped(text, bigint, bigint, text, bigint, bigint) SET jit = off;
