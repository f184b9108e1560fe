//! The SQLite engine: one writer connection (SQLite has one writer anyway), WAL so readers never
//! wait, JSON arrays for batches, in-process wake-ups.

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};
use uuid::Uuid;

use crate::error::{QueueError, Result};
use crate::job::{ClaimedJob, DeadGroup, DeadMatch, JobFilter, JobRecord, JobState, QueueStats};
use crate::sql::{self, CAP_CTES, CLAIM_COLUMNS, Dialect, JOB_COLUMNS, WAITING};
use crate::store::{CronRow, InsertMode, InsertRow, Transition};

struct Sql {
    enqueue: [String; 3],
    claim: String,
    claim_capped: String,
    finish: String,
    reap: String,
    replay: String,
}

static SQL: LazyLock<Sql> = LazyLock::new(|| {
    // `base` is MATERIALIZED so the fairness lookups run once per group of the batch; inlined,
    // the planner ran them once per row (13 s instead of 0.1 s for 10,000 rows).
    // Each row looks its group's round up itself (two index probes). A join against a CTE of
    // the batch's groups, as on PostgreSQL, got no index from SQLite's planner: quadratic,
    // 70 s for 30,000 jobs in 1,000 groups. The statement does not see its own rows: SQLite
    // materializes a SELECT that reads the table it inserts into.
    let enqueue = |mode: i16, on_conflict: &str| {
        format!(
            "WITH input AS ( \
               SELECT value ->> 'id' AS id, value ->> 'queue' AS queue, value ->> 'kind' AS kind, \
                 value ->> 'payload' AS payload, value ->> 'priority' AS priority, \
                 value ->> 'run_at' AS run_at, value ->> 'max_attempts' AS max_attempts, \
                 value ->> 'singleton_key' AS singleton_key, value ->> 'group' AS group_key, \
                 value ->> 'expires_at' AS expires_at, value ->> 'rank' AS rank \
               FROM json_each($1) WHERE value ->> 'mode' = {mode}) \
             INSERT INTO ferry_jobs AS j (id, queue, kind, payload, state, priority, fair_round, run_at, \
               max_attempts, singleton_key, group_key, expires_at, created_at) \
             SELECT i.id, i.queue, i.kind, i.payload, 'queued', i.priority, {fair_round} + i.rank, \
               i.run_at, i.max_attempts, i.singleton_key, i.group_key, i.expires_at, $2 \
             FROM input i \
             WHERE true {on_conflict} \
             RETURNING id, singleton_key",
            fair_round = sql::next_round(Dialect::Sqlite, "i", "$2"),
        )
    };
    let conflict = |set: &str| {
        format!(
            "ON CONFLICT (singleton_key) WHERE singleton_key IS NOT NULL AND state IN {WAITING} \
             DO UPDATE SET {set}"
        )
    };
    let claimable = sql::claimable("1");
    let claim_update = format!(
        "UPDATE ferry_jobs AS j SET state = 'running', attempt = j.attempt + 1, lease_owner = $4, \
           lease_until = $5, started_at = $2 \
         FROM picked WHERE j.id = picked.id \
         RETURNING {cols}",
        cols = CLAIM_COLUMNS.replace("j.", "")
    );
    Sql {
        // One statement per conflict mode: SQLite has no data-modifying CTEs.
        enqueue: [
            enqueue(0, ""),
            enqueue(1, &conflict("singleton_key = j.singleton_key")),
            enqueue(
                2,
                &conflict(
                    "payload = excluded.payload, run_at = excluded.run_at, \
                     priority = excluded.priority, expires_at = excluded.expires_at, \
                     max_attempts = excluded.max_attempts",
                ),
            ),
        ],
        claim: format!(
            "WITH picked AS ( \
               SELECT id FROM ferry_jobs WHERE {claimable} \
               ORDER BY priority DESC, fair_round, id LIMIT $3) \
             {claim_update}"
        ),
        // One writer: no other claim can interleave, so the room seen is the room there is.
        claim_capped: format!(
            "WITH {CAP_CTES} \
             cand AS ( \
               SELECT id, group_key, priority, fair_round FROM ferry_jobs WHERE {claimable} \
                 AND group_key NOT IN (SELECT group_key FROM full_groups) \
               ORDER BY priority DESC, fair_round, id LIMIT $6), \
             ranked AS ( \
               SELECT c.id, c.priority, c.fair_round, \
                 row_number() OVER (PARTITION BY c.group_key ORDER BY c.priority DESC, c.fair_round, c.id) AS rn, \
                 COALESCE(cp.cap, (SELECT cap FROM qcap)) - COALESCE(r.n, 0) AS room \
               FROM cand c LEFT JOIN caps cp ON cp.group_key = c.group_key \
                 LEFT JOIN running r ON r.group_key = c.group_key), \
             picked AS ( \
               SELECT id FROM ranked WHERE room IS NULL OR rn <= room \
               ORDER BY priority DESC, fair_round, id LIMIT $3) \
             {claim_update}"
        ),
        finish: sql::transition(
            Dialect::Sqlite,
            &format!(
                "SELECT j.id, {next} AS next_state FROM ferry_jobs j \
                 WHERE j.id = $2 AND j.attempt = $3 AND j.state = 'running' AND j.lease_owner = $4",
                next = sql::next_state("j", "$5")
            ),
            "$1",
            "$6",
            "CASE WHEN $5 = 'snooze' THEN 1 ELSE 0 END",
            "$7",
        ),
        reap: sql::transition(
            Dialect::Sqlite,
            &sql::reap_target(""),
            "$1",
            "$1",
            "0",
            "'lease expired: worker ' || COALESCE(j.lease_owner, '?') || ' stopped heartbeating'",
        ),
        replay: format!(
            "UPDATE ferry_jobs AS j SET state = 'queued', attempt = 0, run_at = $2, fair_round = {fair_round}, \
               finished_at = NULL, started_at = NULL, lease_owner = NULL, lease_until = NULL, \
               cancel_requested = 0 \
             WHERE j.id = $1 AND j.state IN ('dead', 'cancelled', 'expired') AND NOT {sup} \
             RETURNING id",
            fair_round = sql::next_round(Dialect::Sqlite, "j", "$2"),
            sup = sql::superseded("j"),
        ),
    }
});

#[derive(Debug, Clone)]
pub(crate) struct SqliteEngine {
    /// The one writer. Every statement that changes the database goes through it.
    pub(crate) writer: SqlitePool,
    /// Readers for listings and stats; WAL lets them run beside the writer.
    pub(crate) reader: SqlitePool,
}

impl SqliteEngine {
    pub(crate) async fn connect(url: &str) -> Result<SqliteEngine> {
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode loses nothing when the process dies; only a power cut may lose
            // the last commits. It is what makes single-writer SQLite fast.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        {
            // Other crates (ferry-connect, …) keep their own migrations in the same database.
            let mut m = sqlx::migrate!("./migrations/sqlite");
            m.set_ignore_missing(true);
            m
        }
        .run(&writer)
        .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await?;
        Ok(SqliteEngine { writer, reader })
    }

    /// Inserts a batch: one statement per conflict mode present. The caller makes them atomic.
    pub(crate) async fn insert(
        conn: &mut SqliteConnection,
        rows: &[InsertRow],
        now: i64,
    ) -> Result<Vec<(Uuid, Option<String>)>> {
        let input: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id.to_string(), "queue": r.queue, "kind": r.kind, "payload": r.payload,
                    "priority": r.priority, "run_at": r.run_at, "max_attempts": r.max_attempts,
                    "singleton_key": r.singleton_key, "group": r.group, "expires_at": r.expires_at,
                    "rank": r.rank, "mode": r.mode as i16,
                })
            })
            .collect();
        let input = serde_json::to_string(&input)?;
        let mut out = Vec::with_capacity(rows.len());
        for mode in [InsertMode::Plain, InsertMode::Keep, InsertMode::Replace] {
            if !rows.iter().any(|r| r.mode == mode) {
                continue;
            }
            let returned = sqlx::query(sqlx::AssertSqlSafe(SQL.enqueue[mode as usize].as_str()))
                .bind(&input)
                .bind(now)
                .fetch_all(&mut *conn)
                .await?;
            for row in &returned {
                out.push((uuid_at(row, 0)?, row.try_get(1)?));
            }
        }
        Ok(out)
    }

    pub(crate) async fn claim(
        &self,
        queue: &str,
        owner: &str,
        n: i64,
        now: i64,
        lease_until: i64,
        capped: bool,
    ) -> Result<Vec<ClaimedJob>> {
        let sql = if capped {
            &SQL.claim_capped
        } else {
            &SQL.claim
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
            .bind(queue)
            .bind(now)
            .bind(n)
            .bind(owner)
            .bind(lease_until)
            .bind(n.saturating_mul(4).max(64))
            .fetch_all(&self.writer)
            .await?;
        rows.iter().map(decode_claimed).collect()
    }

    pub(crate) async fn complete(
        &self,
        ids: &[Uuid],
        owner: &str,
        now: i64,
        delete: bool,
    ) -> Result<u64> {
        let done: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        let sql = if delete {
            "DELETE FROM ferry_jobs WHERE id IN (SELECT value FROM json_each($2)) \
               AND state = 'running' AND lease_owner = $3 AND $1 IS NOT NULL"
        } else {
            "UPDATE ferry_jobs SET state = 'completed', finished_at = $1, lease_until = NULL \
             WHERE id IN (SELECT value FROM json_each($2)) \
               AND state = 'running' AND lease_owner = $3"
        };
        let r = sqlx::query(sql)
            .bind(now)
            .bind(serde_json::to_string(&done)?)
            .bind(owner)
            .execute(&self.writer)
            .await?;
        Ok(r.rows_affected())
    }

    pub(crate) async fn finish(&self, t: &Transition<'_>) -> Result<Option<JobState>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(SQL.finish.as_str()))
            .bind(t.now)
            .bind(t.id.to_string())
            .bind(t.attempt)
            .bind(t.owner)
            .bind(t.reason)
            .bind(t.requeue_at)
            .bind(t.error)
            .fetch_optional(&self.writer)
            .await?;
        row.map(|r| state_at(&r, 1)).transpose()
    }

    pub(crate) async fn reap(&self, now: i64) -> Result<Vec<(Uuid, JobState)>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(SQL.reap.as_str()))
            .bind(now)
            .fetch_all(&self.writer)
            .await?;
        rows.iter()
            .map(|r| Ok((uuid_at(r, 0)?, state_at(r, 1)?)))
            .collect()
    }

    pub(crate) async fn heartbeat(
        &self,
        ids: &[Uuid],
        owner: &str,
        lease_until: i64,
    ) -> Result<Vec<(Uuid, bool)>> {
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        let rows = sqlx::query(
            "UPDATE ferry_jobs SET lease_until = $1 \
             WHERE id IN (SELECT value FROM json_each($2)) AND state = 'running' AND lease_owner = $3 \
             RETURNING id, cancel_requested",
        )
        .bind(lease_until)
        .bind(serde_json::to_string(&ids)?)
        .bind(owner)
        .fetch_all(&self.writer)
        .await?;
        rows.iter()
            .map(|r| Ok((uuid_at(r, 0)?, r.try_get(1)?)))
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
               SELECT id FROM (SELECT id FROM ferry_jobs WHERE state IN ('completed', 'cancelled', 'expired') \
                  AND finished_at < $1 LIMIT $3) \
               UNION ALL \
               SELECT id FROM (SELECT id FROM ferry_jobs WHERE state = 'dead' AND finished_at < $2 LIMIT $3))",
        )
        .bind(finished_before)
        .bind(dead_before)
        .bind(limit)
        .execute(&self.writer)
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
        .bind(id.to_string())
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        row.map(|r| state_at(&r, 0)).transpose()
    }

    pub(crate) async fn replay(&self, id: Uuid, now: i64) -> Result<bool> {
        let row = sqlx::query(sqlx::AssertSqlSafe(SQL.replay.as_str()))
            .bind(id.to_string())
            .bind(now)
            .fetch_optional(&self.writer)
            .await?;
        Ok(row.is_some())
    }

    pub(crate) async fn waiting_with_key(&self, key: &str) -> Result<Option<Uuid>> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM ferry_jobs WHERE singleton_key = $1 AND state IN ('queued', 'retrying')",
        )
        .bind(key)
        .fetch_optional(&self.writer)
        .await?;
        id.map(|s| parse_uuid(&s)).transpose()
    }

    pub(crate) async fn get(&self, id: Uuid) -> Result<Option<JobRecord>> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM ferry_jobs WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(decode_record).transpose()
    }

    pub(crate) async fn list(&self, f: &JobFilter) -> Result<Vec<JobRecord>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM ferry_jobs WHERE ($1 IS NULL OR queue = $1) \
               AND ($2 IS NULL OR state = $2) AND ($3 IS NULL OR kind = $3) \
               AND ($4 IS NULL OR group_key = $4) AND ($5 IS NULL OR id > $5) \
             ORDER BY id LIMIT $6"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(f.queue.as_deref())
            .bind(f.state.map(JobState::as_str))
            .bind(f.kind.as_deref())
            .bind(f.group.as_deref())
            .bind(f.after.map(|u| u.to_string()))
            .bind(i64::from(f.limit))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(decode_record).collect()
    }

    pub(crate) async fn cron_upsert(&self, c: &CronRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO ferry_cron (name, expr, queue, kind, payload, next_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (name) DO UPDATE SET queue = excluded.queue, kind = excluded.kind, \
               payload = excluded.payload, expr = excluded.expr, \
               next_at = CASE WHEN ferry_cron.expr = excluded.expr THEN ferry_cron.next_at \
                              ELSE excluded.next_at END",
        )
        .bind(&c.name)
        .bind(&c.expr)
        .bind(&c.queue)
        .bind(&c.kind)
        .bind(&c.payload)
        .bind(c.next_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}

crate::common::common_ops!(
    SqliteEngine,
    SqliteConnection,
    write = writer,
    read = reader
);

fn parse_uuid(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| QueueError::Database(sqlx::Error::Decode(Box::new(e))))
}

fn uuid_at(row: &SqliteRow, i: usize) -> Result<Uuid> {
    let s: String = row.try_get(i)?;
    parse_uuid(&s)
}

crate::common::row_decoders!(SqliteRow);
