//! The PostgreSQL engine: `FOR UPDATE SKIP LOCKED` claims, arrays for batches, NOTIFY wake-ups.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::direct::Direct;
use crate::error::Result;
use crate::job::{ClaimedJob, DeadGroup, DeadMatch, JobFilter, JobRecord, JobState, QueueStats};
use crate::sql::{self, Dialect, JOB_COLUMNS, WAITING};
use crate::store::{CronRow, InsertMode, InsertRow, Transition};

pub(crate) const NOTIFY_CHANNEL: &str = "ferry_jobs";

struct Sql {
    enqueue: String,
    enqueue_plain: String,
    finish: String,
    reap: String,
    replay: String,
}

static SQL: LazyLock<Sql> = LazyLock::new(|| {
    // `base` is MATERIALIZED so the fairness lookups run once per group of the batch; inlined,
    // the planner ran them once per row (13 s instead of 0.1 s for 10,000 rows). Rows without a
    // singleton key take a plain INSERT: ON CONFLICT makes every row a speculative insertion
    // (an extra WAL record and index pass) although only keyed rows can conflict.
    let insert = |mode: i16, on_conflict: &str| {
        format!(
            "INSERT INTO ferry_jobs AS j (id, queue, kind, payload, state, priority, fair_round, run_at, \
               max_attempts, singleton_key, group_key, expires_at, created_at) \
             SELECT r.id, r.queue, r.kind, r.payload::jsonb, 'queued', r.priority, r.fair_round, r.run_at, \
               r.max_attempts, r.singleton_key, r.group_key, r.expires_at, $11 \
             FROM rows r WHERE r.mode = {mode} {on_conflict} \
             RETURNING j.id, j.singleton_key"
        )
    };
    let conflict = |set: &str| {
        format!(
            "ON CONFLICT (singleton_key) WHERE singleton_key IS NOT NULL AND state IN {WAITING} \
             DO UPDATE SET {set}"
        )
    };
    let enqueue = format!(
        "WITH input AS ( \
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int2[], \
             $6::int8[], $7::int4[], $8::text[], $9::text[], $10::int8[], $12::int8[], $13::int2[]) \
           AS t(id, queue, kind, payload, priority, run_at, max_attempts, singleton_key, \
             group_key, expires_at, rank, mode)), \
         keys AS (SELECT DISTINCT queue, group_key, priority FROM input), \
         base AS MATERIALIZED (SELECT k.queue, k.group_key, k.priority, {fair_round} AS round0 FROM keys k), \
         rows AS (SELECT i.*, b.round0 + i.rank AS fair_round FROM input i JOIN base b \
           ON b.queue = i.queue AND b.group_key = i.group_key AND b.priority = i.priority), \
         plain AS ({plain}), keep AS ({keep}), repl AS ({repl}) \
         SELECT * FROM plain UNION ALL SELECT * FROM keep UNION ALL SELECT * FROM repl \
         UNION ALL SELECT NULL::uuid, NULL::text WHERE ferry_notify($14) < 0",
        fair_round = sql::next_round(Dialect::Postgres, "k", "$11"),
        plain = insert(0, ""),
        keep = insert(1, &conflict("singleton_key = j.singleton_key")),
        repl = insert(
            2,
            &conflict(
                "payload = EXCLUDED.payload, run_at = EXCLUDED.run_at, \
                 priority = EXCLUDED.priority, expires_at = EXCLUDED.expires_at, \
                 max_attempts = EXCLUDED.max_attempts",
            )
        ),
    );
    // A batch without singleton keys (the common case) can not conflict: one INSERT, its
    // rows' queue, group and priority given once per distinct triple (the fairness lookups run
    // once for each), nothing returned (every row is stored or the statement fails). The
    // general statement's shared CTEs, its empty branches and its 1,000 returned rows were a
    // third of a batch's time.
    let enqueue_plain = format!(
        "WITH base AS MATERIALIZED ( \
           SELECT k.ord, k.queue, k.group_key, k.priority, {fair_round} AS round0 \
           FROM unnest($1::text[], $2::text[], $3::int2[]) WITH ORDINALITY \
             AS k(queue, group_key, priority, ord)), \
         ins AS ( \
           INSERT INTO ferry_jobs (id, queue, kind, payload, state, priority, fair_round, run_at, \
             max_attempts, group_key, expires_at, created_at) \
           SELECT t.id, b.queue, t.kind, t.payload::jsonb, 'queued', b.priority, b.round0 + t.rank, \
             t.run_at, t.max_attempts, b.group_key, t.expires_at, $4 \
           FROM unnest($5::uuid[], $6::int8[], $7::text[], $8::text[], $9::int8[], $10::int4[], \
             $11::int8[], $12::int8[]) AS t(id, key, kind, payload, run_at, max_attempts, \
             expires_at, rank) \
           JOIN base b ON b.ord = t.key \
           RETURNING 1) \
         SELECT (SELECT count(*) FROM ins), ferry_notify($13)",
        fair_round = sql::next_round(Dialect::Postgres, "k", "$4"),
    );
    Sql {
        enqueue,
        enqueue_plain,
        finish: sql::transition(
            Dialect::Postgres,
            &format!(
                "SELECT j.id, {next} AS next_state FROM ferry_jobs j \
                 WHERE j.id = $2 AND j.attempt = $3 AND j.state = 'running' AND j.lease_owner = $4 \
                 FOR UPDATE",
                next = sql::next_state("j", "$5::text")
            ),
            "$1",
            "$6",
            "CASE WHEN $5 = 'snooze' THEN 1 ELSE 0 END",
            "$7::text",
        ),
        reap: sql::transition(
            Dialect::Postgres,
            &sql::reap_target(" FOR UPDATE SKIP LOCKED"),
            "$1",
            "$1",
            "0",
            "'lease expired: worker ' || COALESCE(j.lease_owner, '?') || ' stopped heartbeating'",
        ),
        replay: format!(
            "UPDATE ferry_jobs AS j SET state = 'queued', attempt = 0, run_at = $2, fair_round = {fair_round}, \
               finished_at = NULL, started_at = NULL, lease_owner = NULL, lease_until = NULL, \
               cancel_requested = false \
             WHERE j.id = $1 AND j.state IN ('dead', 'cancelled', 'expired') AND NOT {sup} \
             RETURNING j.id",
            fair_round = sql::next_round(Dialect::Postgres, "j", "$2"),
            sup = sql::superseded("j"),
        ),
    }
});

/// Run on every new connection, the pool's and the worker's own (see `connect`).
pub(crate) const SESSION_SETUP: &str = "SET plan_cache_mode = force_generic_plan";

#[derive(Debug, Clone)]
pub(crate) struct PgEngine {
    pub(crate) pool: PgPool,
    /// The worker's claims and acknowledgements: up to as many connections again as the pool.
    direct: Arc<Direct>,
}

impl PgEngine {
    pub(crate) async fn connect(
        url: &str,
        max_connections: u32,
        migrate: bool,
    ) -> Result<PgEngine> {
        let opts: PgConnectOptions = url.parse()?;
        // Every statement of the queue has a fixed shape; custom plans only cost planning time
        // (a single enqueue spent more time planning than running). A SET after connecting,
        // not a startup option: PgBouncer refuses startup options, and if a transaction pooler
        // loses the SET only speed suffers.
        // No ping before handing out a connection: sqlx pings every connection it takes from
        // the idle set (a round trip before each statement) and again when one goes back. The
        // ping on release stays and drops a broken connection; a connection that broke while
        // idle fails one statement, and its caller sees that error like any other.
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .test_before_acquire(false)
            .after_connect(|conn, _meta| {
                Box::pin(async move { sqlx::query(SESSION_SETUP).execute(conn).await.map(|_| ()) })
            })
            .connect_with(opts.clone())
            .await?;
        if migrate {
            // Other crates (ferry-connect, …) keep their own migrations in the same database.
            let mut m = sqlx::migrate!("./migrations/postgres");
            m.set_ignore_missing(true);
            m.run(&pool).await?;
        }
        let direct = Arc::new(Direct::new(opts, max_connections));
        Ok(PgEngine { pool, direct })
    }

    /// Inserts a batch in one statement, which also NOTIFYs `notify` (see `wake::NotifyDebouncer`).
    pub(crate) async fn insert(
        conn: &mut PgConnection,
        rows: &[InsertRow],
        now: i64,
        notify: &[String],
    ) -> Result<Vec<(Uuid, Option<String>)>> {
        if rows.iter().all(|r| r.mode == InsertMode::Plain) {
            return Self::insert_plain(conn, rows, now, notify).await;
        }
        let out = sqlx::query(sqlx::AssertSqlSafe(SQL.enqueue.as_str()))
            .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.queue.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.payload.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.priority).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.run_at).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.max_attempts).collect::<Vec<_>>())
            .bind(
                rows.iter()
                    .map(|r| r.singleton_key.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(rows.iter().map(|r| r.group.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.expires_at).collect::<Vec<_>>())
            .bind(now)
            .bind(rows.iter().map(|r| r.rank).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.mode as i16).collect::<Vec<_>>())
            .bind(notify)
            .fetch_all(&mut *conn)
            .await?;
        out.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    /// [`PgEngine::insert`] of rows without singleton keys: every row is stored.
    async fn insert_plain(
        conn: &mut PgConnection,
        rows: &[InsertRow],
        now: i64,
        notify: &[String],
    ) -> Result<Vec<(Uuid, Option<String>)>> {
        let mut keys: HashMap<(&str, &str, i16), i64> = HashMap::new();
        let (mut queues, mut groups, mut priorities) = (Vec::new(), Vec::new(), Vec::new());
        let key_of: Vec<i64> = rows
            .iter()
            .map(|r| {
                *keys
                    .entry((r.queue.as_str(), r.group.as_str(), r.priority))
                    .or_insert_with(|| {
                        queues.push(r.queue.as_str());
                        groups.push(r.group.as_str());
                        priorities.push(r.priority);
                        queues.len() as i64 // WITH ORDINALITY counts from 1
                    })
            })
            .collect();
        let (stored, _): (i64, i32) =
            sqlx::query_as(sqlx::AssertSqlSafe(SQL.enqueue_plain.as_str()))
                .bind(queues)
                .bind(groups)
                .bind(priorities)
                .bind(now)
                .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
                .bind(key_of)
                .bind(rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.payload.as_str()).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.run_at).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.max_attempts).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.expires_at).collect::<Vec<_>>())
                .bind(rows.iter().map(|r| r.rank).collect::<Vec<_>>())
                .bind(notify)
                .fetch_one(&mut *conn)
                .await?;
        if stored != rows.len() as i64 {
            return Err(crate::error::QueueError::InvalidJob(format!(
                "{stored} of {} jobs were stored",
                rows.len()
            )));
        }
        Ok(rows.iter().map(|r| (r.id, None)).collect())
    }

    /// VACUUMs the job table once its dead row versions pass `min_dead` and a tenth of its
    /// live rows; returns whether it ran. Every claim walks the claim
    /// index from its start, over the entries of jobs claimed since the last VACUUM, and
    /// autovacuum wakes at most once a minute: at thousands of jobs a second that walk grows to
    /// hundreds of thousands of entries.
    pub(crate) async fn vacuum_if_needed(&self, min_dead: i64) -> Result<bool> {
        let (dead, live): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(n_dead_tup, 0), COALESCE(n_live_tup, 0) FROM pg_stat_user_tables \
             WHERE relid = 'ferry_jobs'::regclass",
        )
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or((0, 0));
        if dead < min_dead.max(live / 10) {
            return Ok(false);
        }
        // SKIP_LOCKED: when another worker is already vacuuming, this one skips at once (no
        // advisory lock, which PgBouncer's transaction mode would leak).
        sqlx::query("VACUUM (INDEX_CLEANUP ON, SKIP_LOCKED) ferry_jobs")
            .execute(&self.pool)
            .await?;
        Ok(true)
    }

    pub(crate) async fn notify(&self, queue: &str) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(NOTIFY_CHANNEL)
            .bind(queue)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn claim(
        &self,
        queue: &str,
        owner: &str,
        n: i64,
        now: i64,
        lease_until: i64,
        capped: bool,
    ) -> Result<Vec<ClaimedJob>> {
        // The claim statements live in migration 0002 as functions, for a plan that does not
        // depend on table statistics.
        let q = if capped {
            sqlx::query("SELECT * FROM ferry_claim_capped($1, $2, $3, $4, $5, $6)")
                .bind(queue)
                .bind(now)
                .bind(n)
                .bind(owner)
                .bind(lease_until)
                .bind(n.saturating_mul(4).max(64))
        } else {
            sqlx::query("SELECT * FROM ferry_claim($1, $2, $3, $4, $5)")
                .bind(queue)
                .bind(now)
                .bind(n)
                .bind(owner)
                .bind(lease_until)
        };
        let mut c = self.direct.get().await?;
        let rows = q.fetch_all(c.conn()).await?;
        c.give_back();
        rows.iter().map(decode_claimed).collect()
    }

    /// Completes `done` and claims up to `n` jobs of `queue` in one statement (one commit):
    /// the completion runs first (the claim's batch size depends on its result, which orders
    /// them), so a job that frees a group's slot makes room for the claim.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn complete_and_claim(
        &self,
        done: &[Uuid],
        owner: &str,
        now: i64,
        delete: bool,
        queue: &str,
        n: i64,
        lease_until: i64,
        capped: bool,
    ) -> Result<Vec<ClaimedJob>> {
        // Uncapped: one function (migration 0010). Capped: the two side by side, the
        // acknowledgement first (the claim's batch size depends on its result).
        let sql = if capped {
            "SELECT c.* FROM (SELECT ferry_complete($1, $2, $3, $4) AS n) d \
             CROSS JOIN LATERAL ferry_claim_capped($5, $3, $6 + 0 * d.n, $2, $7, $8) c"
        } else {
            "SELECT * FROM ferry_complete_and_claim($1, $2, $3, $4, $5, $6, $7)"
        };
        let mut q = sqlx::query(sql)
            .bind(done)
            .bind(owner)
            .bind(now)
            .bind(delete)
            .bind(queue)
            .bind(n)
            .bind(lease_until);
        if capped {
            q = q.bind(n.saturating_mul(4).max(64));
        }
        let mut c = self.direct.get().await?;
        let rows = q.fetch_all(c.conn()).await?;
        c.give_back();
        rows.iter().map(decode_claimed).collect()
    }

    pub(crate) async fn complete(
        &self,
        ids: &[Uuid],
        owner: &str,
        now: i64,
        delete: bool,
    ) -> Result<u64> {
        // In migration 0002: a fixed lock order, shared with the heartbeat.
        let mut c = self.direct.get().await?;
        let n = sqlx::query_scalar::<_, i64>("SELECT ferry_complete($1, $2, $3, $4)")
            .bind(ids)
            .bind(owner)
            .bind(now)
            .bind(delete)
            .fetch_one(c.conn())
            .await?;
        c.give_back();
        Ok(n.max(0) as u64)
    }

    pub(crate) async fn finish(&self, t: &Transition<'_>) -> Result<Option<JobState>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(SQL.finish.as_str()))
            .bind(t.now)
            .bind(t.id)
            .bind(t.attempt)
            .bind(t.owner)
            .bind(t.reason)
            .bind(t.requeue_at)
            .bind(t.error)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| state_at(&r, 1)).transpose()
    }

    pub(crate) async fn reap(&self, now: i64) -> Result<Vec<(Uuid, JobState)>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(SQL.reap.as_str()))
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, state_at(r, 1)?)))
            .collect()
    }

    pub(crate) async fn heartbeat(
        &self,
        ids: &[Uuid],
        owner: &str,
        lease_until: i64,
    ) -> Result<Vec<(Uuid, bool)>> {
        let rows = sqlx::query("SELECT id, cancel_requested FROM ferry_heartbeat($1, $2, $3)")
            .bind(ids)
            .bind(owner)
            .bind(lease_until)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    pub(crate) async fn prune(
        &self,
        finished_before: i64,
        dead_before: i64,
        limit: i64,
    ) -> Result<u64> {
        let r = sqlx::query(
            "DELETE FROM ferry_jobs WHERE id IN ( \
               (SELECT id FROM ferry_jobs WHERE state IN ('completed', 'cancelled', 'expired') \
                  AND finished_at < $1 LIMIT $3) \
               UNION ALL \
               (SELECT id FROM ferry_jobs WHERE state = 'dead' AND finished_at < $2 LIMIT $3))",
        )
        .bind(finished_before)
        .bind(dead_before)
        .bind(limit)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    pub(crate) async fn cancel(&self, id: Uuid, now: i64) -> Result<Option<JobState>> {
        let row = sqlx::query(
            "UPDATE ferry_jobs SET \
               cancel_requested = (state = 'running'), \
               finished_at = CASE WHEN state = 'running' THEN finished_at ELSE $2 END, \
               state = CASE WHEN state = 'running' THEN 'running' ELSE 'cancelled' END \
             WHERE id = $1 AND state IN ('queued', 'retrying', 'running') \
             RETURNING state",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| state_at(&r, 0)).transpose()
    }

    pub(crate) async fn replay(&self, id: Uuid, now: i64) -> Result<bool> {
        let row = sqlx::query(sqlx::AssertSqlSafe(SQL.replay.as_str()))
            .bind(id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    pub(crate) async fn waiting_with_key(&self, key: &str) -> Result<Option<Uuid>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM ferry_jobs WHERE singleton_key = $1 AND state IN ('queued', 'retrying')",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?)
    }

    pub(crate) async fn get(&self, id: Uuid) -> Result<Option<JobRecord>> {
        let sql = format!("SELECT {} FROM ferry_jobs WHERE id = $1", pg_job_columns());
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode_record).transpose()
    }

    pub(crate) async fn list(&self, f: &JobFilter) -> Result<Vec<JobRecord>> {
        let sql = format!(
            "SELECT {} FROM ferry_jobs WHERE ($1::text IS NULL OR queue = $1) \
               AND ($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR kind = $3) \
               AND ($4::text IS NULL OR group_key = $4) AND ($5::uuid IS NULL OR id > $5) \
             ORDER BY id LIMIT $6",
            pg_job_columns()
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(f.queue.as_deref())
            .bind(f.state.map(JobState::as_str))
            .bind(f.kind.as_deref())
            .bind(f.group.as_deref())
            .bind(f.after)
            .bind(i64::from(f.limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode_record).collect()
    }

    pub(crate) async fn cron_upsert(&self, c: &CronRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO ferry_cron (name, expr, queue, kind, payload, next_at) \
             VALUES ($1, $2, $3, $4, $5::jsonb, $6) \
             ON CONFLICT (name) DO UPDATE SET queue = EXCLUDED.queue, kind = EXCLUDED.kind, \
               payload = EXCLUDED.payload, expr = EXCLUDED.expr, \
               next_at = CASE WHEN ferry_cron.expr = EXCLUDED.expr THEN ferry_cron.next_at \
                              ELSE EXCLUDED.next_at END",
        )
        .bind(&c.name)
        .bind(&c.expr)
        .bind(&c.queue)
        .bind(&c.kind)
        .bind(&c.payload)
        .bind(c.next_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

crate::common::common_ops!(PgEngine, PgConnection, write = pool, read = pool);

fn pg_job_columns() -> String {
    JOB_COLUMNS.replace("payload", "payload::text")
}

fn uuid_at(row: &PgRow, i: usize) -> Result<Uuid> {
    Ok(row.try_get(i)?)
}

crate::common::row_decoders!(PgRow);
