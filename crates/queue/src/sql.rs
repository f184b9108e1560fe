//! SQL fragments shared by both engines. Each engine builds its statements once from these.

/// The states a job waits in; the claim, fairness and singleton indexes are partial on this.
pub(crate) const WAITING: &str = "('queued', 'retrying')";

pub(crate) use ferry_db::Dialect;

/// The fairness round for a job of row `x` entering the waiting line at time `now`: behind the
/// last waiting job of its own group, but never before the queue's current round (the round of
/// the next ready job), so a group that was idle joins the rotation at once instead of jumping a
/// whole backlog ahead or behind. Both lookups are single index probes.
pub(crate) fn next_round(d: Dialect, x: &str, now: &str) -> String {
    format!(
        "{greatest}(\
           COALESCE((SELECT v.fair_round + 1 FROM ferry_jobs v WHERE v.queue = {x}.queue \
              AND v.group_key = {x}.group_key AND v.priority = {x}.priority \
              AND v.state IN {WAITING} ORDER BY v.fair_round DESC LIMIT 1), 0), \
           COALESCE((SELECT v.fair_round FROM ferry_jobs v WHERE v.queue = {x}.queue \
              AND v.priority = {x}.priority AND v.state IN {WAITING} AND v.run_at <= {now} \
              ORDER BY v.fair_round LIMIT 1), 0))",
        greatest = d.greatest()
    )
}

/// True when another job with `x`'s singleton key is waiting: `x` must then not return to the
/// waiting line (the unique index forbids it, and the waiting job does the same work).
pub(crate) fn superseded(x: &str) -> String {
    format!(
        "({x}.singleton_key IS NOT NULL AND EXISTS (SELECT 1 FROM ferry_jobs o \
           WHERE o.singleton_key = {x}.singleton_key AND o.state IN {WAITING} AND o.id <> {x}.id))"
    )
}

/// An UPDATE that moves the rows chosen by `target` (a SELECT of `id` and `next_state`) to their
/// next state. `requeue_at` is the SQL for run_at when a row returns to the waiting line and
/// `refund` the SQL for how many attempts to give back (snoozes do not spend one).
pub(crate) fn transition(
    d: Dialect,
    target: &str,
    now: &str,
    requeue_at: &str,
    refund: &str,
    error: &str,
) -> String {
    let fair_round = next_round(d, "j", now);
    // Every failed attempt appends a JSON line (attempt, time, error cut to 1,000 characters):
    // the history a job's page shows, while `last_error` stays the quick answer.
    let line = match d {
        Dialect::Postgres => format!(
            "json_build_object('attempt', j.attempt, 'at', {now}, 'error', left({error}, 1000))::text || chr(10)"
        ),
        Dialect::Sqlite => format!(
            "json_object('attempt', j.attempt, 'at', {now}, 'error', substr({error}, 1, 1000)) || char(10)"
        ),
    };
    format!(
        "WITH cur AS ({target}) \
         UPDATE ferry_jobs AS j SET \
           state = cur.next_state, \
           attempt = CASE WHEN cur.next_state IN {WAITING} THEN j.attempt - ({refund}) ELSE j.attempt END, \
           run_at = CASE WHEN cur.next_state IN {WAITING} THEN {requeue_at} ELSE j.run_at END, \
           fair_round = CASE WHEN cur.next_state IN {WAITING} THEN {fair_round} ELSE j.fair_round END, \
           last_error = COALESCE({error}, j.last_error), \
           errors = CASE WHEN ({error}) IS NULL THEN j.errors ELSE COALESCE(j.errors, '') || {line} END, \
           finished_at = CASE WHEN cur.next_state IN {WAITING} THEN NULL ELSE {now} END, \
           lease_until = NULL \
         FROM cur WHERE j.id = cur.id \
         RETURNING {returning}",
        // SQLite's RETURNING sees only the target table, unqualified; PostgreSQL needs the alias.
        returning = match d {
            Dialect::Postgres => "j.id, j.state",
            Dialect::Sqlite => "id, state",
        }
    )
}

/// The next state of a running row `j` that stops running for `reason` (a bound `Reason`).
pub(crate) fn next_state(j: &str, reason: &str) -> String {
    use crate::store::Reason;
    let sup = superseded(j);
    let (cancel, dead, retry, snooze) = (
        Reason::Cancel.as_str(),
        Reason::Dead.as_str(),
        Reason::Retry.as_str(),
        Reason::Snooze.as_str(),
    );
    format!(
        "CASE \
           WHEN {reason} = '{cancel}' OR {j}.cancel_requested THEN 'cancelled' \
           WHEN {reason} = '{dead}' THEN 'dead' \
           WHEN {reason} = '{retry}' AND {j}.attempt >= {j}.max_attempts THEN 'dead' \
           WHEN {sup} THEN 'cancelled' \
           WHEN {reason} = '{snooze}' THEN 'queued' \
           ELSE 'retrying' END"
    )
}

pub(crate) const JOB_COLUMNS: &str = "id, queue, kind, payload, state, priority, run_at, attempt, \
    max_attempts, singleton_key, group_key, expires_at, lease_owner, lease_until, \
    cancel_requested, last_error, created_at, started_at, finished_at, errors";

/// What a claim returns, in the order `ClaimedJob` is decoded from.
pub(crate) const CLAIM_COLUMNS: &str = "j.id, j.queue, j.kind, j.payload, j.priority, j.fair_round, j.attempt, j.max_attempts, j.group_key, \
     j.singleton_key, j.created_at";

/// Shared by the claim statements: what a job must be to be claimable at `now` (bound as `$2`).
pub(crate) fn claimable(paused_true: &str) -> String {
    format!(
        "queue = $1 AND state IN {WAITING} AND run_at <= $2 \
         AND (expires_at IS NULL OR expires_at > $2) \
         AND NOT EXISTS (SELECT 1 FROM ferry_queues q WHERE q.name = $1 AND q.paused = {paused_true})"
    )
}

/// The groups of queue `$1` already running as many jobs as their cap allows, and for every
/// group with a cap the room it has left (`running` and `room` CTEs for the capped claim).
pub(crate) const CAP_CTES: &str = "running AS ( \
       SELECT group_key, count(*) AS n FROM ferry_jobs \
       WHERE queue = $1 AND state = 'running' GROUP BY group_key), \
     caps AS ( \
       SELECT g.group_key, g.max_running AS cap FROM ferry_group_limits g WHERE g.queue = $1), \
     qcap AS (SELECT group_max_running AS cap FROM ferry_queues WHERE name = $1), \
     full_groups AS ( \
       SELECT r.group_key FROM running r LEFT JOIN caps c ON c.group_key = r.group_key \
       WHERE r.n >= COALESCE(c.cap, (SELECT cap FROM qcap))), ";

/// The running jobs whose lease lapsed before `$1`, oldest first, with their next state. When
/// several share a singleton key, only the first returns to the waiting line (the unique index
/// allows one; the others are cancelled, the waiting one does their work): two jobs with one
/// key can run at once, since a running job does not block a new waiting one.
pub(crate) fn reap_target(lock: &str) -> String {
    format!(
        "SELECT l.id, CASE WHEN l.singleton_key IS NOT NULL AND l.next_state IN {WAITING} \
           AND row_number() OVER (PARTITION BY l.singleton_key, l.next_state ORDER BY l.id) > 1 \
           THEN 'cancelled' ELSE l.next_state END AS next_state \
         FROM (SELECT j.id, j.singleton_key, {next} AS next_state FROM ferry_jobs j \
           WHERE j.state = 'running' AND j.lease_until < $1 \
           ORDER BY j.lease_until LIMIT 1000{lock}) l",
        next = next_state("j", "'retry'"),
    )
}
