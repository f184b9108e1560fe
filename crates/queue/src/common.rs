//! Operations whose SQL is the same on both engines, written once and generated for each.

/// Implements the shared operations on an engine: `$w` is its pool for writes, `$r` for
/// reads, `$conn` its connection type.
macro_rules! common_ops {
    ($engine:ty, $conn:ty, write = $w:ident, read = $r:ident) => {
        impl $engine {
            pub(crate) async fn expire(&self, now: i64) -> Result<u64> {
                let r = sqlx::query(
                    "UPDATE ferry_jobs SET state = 'expired', finished_at = $1, \
                       last_error = 'deadline passed before the job could run' \
                     WHERE expires_at IS NOT NULL AND expires_at <= $1 AND state IN ('queued', 'retrying')",
                )
                .bind(now)
                .execute(&self.$w)
                .await?;
                Ok(r.rows_affected())
            }

            pub(crate) async fn stats(&self, queue: &str, now: i64) -> Result<QueueStats> {
                let row = sqlx::query(
                    "SELECT \
                       (SELECT count(*) FROM ferry_jobs WHERE queue = $1 AND state IN ('queued', 'retrying') AND run_at <= $2), \
                       (SELECT count(*) FROM ferry_jobs WHERE queue = $1 AND state IN ('queued', 'retrying') AND run_at > $2), \
                       (SELECT count(*) FROM ferry_jobs WHERE queue = $1 AND state = 'running'), \
                       (SELECT count(*) FROM ferry_jobs WHERE queue = $1 AND state = 'dead'), \
                       (SELECT min(run_at) FROM ferry_jobs WHERE queue = $1 AND state IN ('queued', 'retrying') AND run_at <= $2), \
                       COALESCE((SELECT paused FROM ferry_queues WHERE name = $1), 0 = 1)",
                )
                .bind(queue)
                .bind(now)
                .fetch_one(&self.$r)
                .await?;
                let oldest: Option<i64> = row.try_get(4)?;
                Ok(QueueStats {
                    queue: queue.to_owned(),
                    ready: row.try_get(0)?,
                    scheduled: row.try_get(1)?,
                    running: row.try_get(2)?,
                    dead: row.try_get(3)?,
                    oldest_ready_age_ms: oldest.map(|t| (now - t).max(0)).unwrap_or(0),
                    paused: row.try_get(5)?,
                })
            }

            pub(crate) async fn glance(&self, queue: &str, now: i64, cap: i64) -> Result<QueueStats> {
                // Every figure reads at most `cap` index entries: waiting, running and dead
                // jobs are counted from their partial indexes alone (an index-only scan on a
                // vacuumed table); which waiting jobs are due needs each one's run_at, so
                // that count and the oldest due job look at the first `cap / 10` in line.
                // The due count walks the line in claim order: without the ORDER BY,
                // PostgreSQL may pick a LIMITed sequential scan, which on a big table starts
                // wherever the last scan stopped (synchronized scans) and can read the whole
                // table before it finds enough.
                let row = sqlx::query(
                    "SELECT \
                       (SELECT count(*) FROM (SELECT 1 FROM ferry_jobs WHERE queue = $1 AND state IN ('queued', 'retrying') LIMIT $3) a), \
                       (SELECT count(*) FROM (SELECT 1 FROM ferry_jobs WHERE queue = $1 AND state IN ('queued', 'retrying') AND run_at <= $2 \
                          ORDER BY priority DESC, fair_round, id LIMIT $4) b), \
                       (SELECT count(*) FROM (SELECT 1 FROM ferry_jobs WHERE queue = $1 AND state = 'running' LIMIT $3) c), \
                       (SELECT count(*) FROM (SELECT 1 FROM ferry_jobs WHERE queue = $1 AND state = 'dead' LIMIT $3) d), \
                       (SELECT min(run_at) FROM (SELECT run_at FROM ferry_jobs WHERE queue = $1 AND state IN ('queued', 'retrying') \
                          ORDER BY priority DESC, fair_round, id LIMIT $4) e WHERE run_at <= $2), \
                       COALESCE((SELECT paused FROM ferry_queues WHERE name = $1), 0 = 1)",
                )
                .bind(queue)
                .bind(now)
                .bind(cap)
                .bind((cap / 10).max(1))
                .fetch_one(&self.$r)
                .await?;
                let waiting: i64 = row.try_get(0)?;
                let ready: i64 = row.try_get(1)?;
                let oldest: Option<i64> = row.try_get(4)?;
                Ok(QueueStats {
                    queue: queue.to_owned(),
                    ready,
                    // Exact while both counts are below their caps; else at least this.
                    scheduled: (waiting - ready).max(0),
                    running: row.try_get(2)?,
                    dead: row.try_get(3)?,
                    oldest_ready_age_ms: oldest.map(|t| (now - t).max(0)).unwrap_or(0),
                    paused: row.try_get(5)?,
                })
            }

            /// Queues with jobs in a state, one index probe per queue (a loose index scan
            /// on the partial index of that state), however many jobs there are.
            pub(crate) async fn queue_names_fast(&self) -> Result<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "WITH RECURSIVE \
                       w(q) AS (SELECT min(queue) FROM ferry_jobs WHERE state IN ('queued', 'retrying') \
                         UNION ALL SELECT (SELECT min(queue) FROM ferry_jobs WHERE state IN ('queued', 'retrying') AND queue > w.q) FROM w WHERE w.q IS NOT NULL), \
                       r(q) AS (SELECT min(queue) FROM ferry_jobs WHERE state = 'running' \
                         UNION ALL SELECT (SELECT min(queue) FROM ferry_jobs WHERE state = 'running' AND queue > r.q) FROM r WHERE r.q IS NOT NULL), \
                       d(q) AS (SELECT min(queue) FROM ferry_jobs WHERE state = 'dead' \
                         UNION ALL SELECT (SELECT min(queue) FROM ferry_jobs WHERE state = 'dead' AND queue > d.q) FROM d WHERE d.q IS NOT NULL) \
                     SELECT q FROM w WHERE q IS NOT NULL UNION SELECT q FROM r WHERE q IS NOT NULL \
                     UNION SELECT q FROM d WHERE q IS NOT NULL UNION SELECT name FROM ferry_queues ORDER BY 1",
                )
                .fetch_all(&self.$r)
                .await?)
            }

            /// Dead jobs per group among the first `cap` dead jobs (a bounded sample).
            pub(crate) async fn dead_by_group(&self, cap: i64) -> Result<Vec<(String, i64)>> {
                let rows = sqlx::query(
                    "SELECT group_key, count(*) FROM \
                       (SELECT group_key FROM ferry_jobs WHERE state = 'dead' LIMIT $1) t GROUP BY group_key",
                )
                .bind(cap)
                .fetch_all(&self.$r)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                    .collect()
            }

            pub(crate) async fn dead_groups(&self, limit: i64) -> Result<Vec<DeadGroup>> {
                let rows = sqlx::query(
                    "SELECT queue, group_key, substr(COALESCE(last_error, ''), 1, 120) AS error, \
                       count(*), min(COALESCE(finished_at, 0)), max(COALESCE(finished_at, 0)) \
                     FROM ferry_jobs WHERE state = 'dead' \
                     GROUP BY queue, group_key, error ORDER BY count(*) DESC, queue, group_key LIMIT $1",
                )
                .bind(limit)
                .fetch_all(&self.$r)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(DeadGroup {
                            queue: r.try_get(0)?,
                            group: r.try_get(1)?,
                            error: r.try_get(2)?,
                            jobs: r.try_get(3)?,
                            first_ms: r.try_get(4)?,
                            last_ms: r.try_get(5)?,
                        })
                    })
                    .collect()
            }

            pub(crate) async fn dead_ids(&self, m: &DeadMatch, limit: i64) -> Result<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT CAST(id AS TEXT) FROM ferry_jobs WHERE state = 'dead' \
                       AND ($1 IS NULL OR queue = $1) AND ($2 IS NULL OR group_key = $2) \
                       AND ($3 IS NULL OR substr(COALESCE(last_error, ''), 1, 120) = $3) \
                       AND COALESCE(finished_at, 0) >= $4 AND COALESCE(finished_at, 0) <= $5 \
                     ORDER BY finished_at LIMIT $6",
                )
                .bind(m.queue.as_deref())
                .bind(m.group.as_deref())
                .bind(m.error.as_deref())
                .bind(m.from_ms)
                .bind(m.to_ms)
                .bind(limit)
                .fetch_all(&self.$r)
                .await?)
            }

            pub(crate) async fn queue_names(&self) -> Result<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT name FROM ferry_queues UNION \
                     SELECT DISTINCT queue FROM ferry_jobs WHERE state IN ('queued', 'retrying', 'running', 'dead') \
                     ORDER BY 1",
                )
                .fetch_all(&self.$r)
                .await?)
            }

            pub(crate) async fn set_paused(&self, queue: &str, paused: bool) -> Result<()> {
                sqlx::query(
                    "INSERT INTO ferry_queues (name, paused) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET paused = EXCLUDED.paused",
                )
                .bind(queue)
                .bind(paused)
                .execute(&self.$w)
                .await?;
                Ok(())
            }

            pub(crate) async fn is_paused(&self, queue: &str) -> Result<bool> {
                Ok(sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM ferry_queues WHERE name = $1 AND paused = (1 = 1))",
                )
                .bind(queue)
                .fetch_one(&self.$r)
                .await?)
            }

            pub(crate) async fn set_queue_group_cap(&self, queue: &str, cap: Option<i32>) -> Result<()> {
                sqlx::query(
                    "INSERT INTO ferry_queues (name, group_max_running) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET group_max_running = EXCLUDED.group_max_running",
                )
                .bind(queue)
                .bind(cap)
                .execute(&self.$w)
                .await?;
                Ok(())
            }

            pub(crate) async fn set_group_cap(
                &self,
                queue: &str,
                group: &str,
                cap: Option<i32>,
            ) -> Result<()> {
                match cap {
                    Some(cap) => sqlx::query(
                        "INSERT INTO ferry_group_limits (queue, group_key, max_running) VALUES ($1, $2, $3) \
                         ON CONFLICT (queue, group_key) DO UPDATE SET max_running = EXCLUDED.max_running",
                    )
                    .bind(queue)
                    .bind(group)
                    .bind(cap),
                    None => sqlx::query("DELETE FROM ferry_group_limits WHERE queue = $1 AND group_key = $2")
                        .bind(queue)
                        .bind(group),
                }
                .execute(&self.$w)
                .await?;
                Ok(())
            }

            pub(crate) async fn has_caps(&self, queue: &str) -> Result<bool> {
                Ok(sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM ferry_group_limits WHERE queue = $1) \
                       OR EXISTS (SELECT 1 FROM ferry_queues WHERE name = $1 AND group_max_running IS NOT NULL)",
                )
                .bind(queue)
                .fetch_one(&self.$r)
                .await?)
            }

            pub(crate) async fn cron_due(&self, now: i64) -> Result<Vec<CronRow>> {
                let rows = sqlx::query(
                    "SELECT name, expr, queue, kind, CAST(payload AS text), next_at FROM ferry_cron WHERE next_at <= $1",
                )
                .bind(now)
                .fetch_all(&self.$w)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(CronRow {
                            name: r.try_get(0)?,
                            expr: r.try_get(1)?,
                            queue: r.try_get(2)?,
                            kind: r.try_get(3)?,
                            payload: r.try_get(4)?,
                            next_at: r.try_get(5)?,
                        })
                    })
                    .collect()
            }

            /// Moves a schedule from `due` to `next` if nobody else did: the compare-and-set that makes
            /// a tick fire once across processes. Runs in the caller's transaction.
            pub(crate) async fn cron_advance(
                conn: &mut $conn,
                name: &str,
                due: i64,
                next: i64,
            ) -> Result<bool> {
                let r = sqlx::query("UPDATE ferry_cron SET next_at = $3 WHERE name = $1 AND next_at = $2")
                    .bind(name)
                    .bind(due)
                    .bind(next)
                    .execute(conn)
                    .await?;
                Ok(r.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use common_ops;

/// Decodes job rows of an engine's row type; the engine module supplies `uuid_at` (a native
/// `uuid` on PostgreSQL, text on SQLite). Columns in the order of `JOB_COLUMNS` (records)
/// and of the claim's `RETURNING` (claimed jobs).
macro_rules! row_decoders {
    ($row:ty) => {
        fn state_at(row: &$row, i: usize) -> Result<JobState> {
            let s: String = row.try_get(i)?;
            JobState::parse(&s).ok_or_else(|| {
                sqlx::Error::Decode(format!("unknown job state {s:?}").into()).into()
            })
        }

        fn decode_claimed(r: &$row) -> Result<ClaimedJob> {
            Ok(ClaimedJob {
                id: uuid_at(r, 0)?,
                queue: r.try_get(1)?,
                kind: r.try_get(2)?,
                payload: r.try_get(3)?,
                priority: r.try_get(4)?,
                fair_round: r.try_get(5)?,
                attempt: r.try_get(6)?,
                max_attempts: r.try_get(7)?,
                group_key: r.try_get(8)?,
                singleton_key: r.try_get(9)?,
                created_at: r.try_get(10)?,
            })
        }

        fn decode_record(r: &$row) -> Result<JobRecord> {
            let payload: String = r.try_get(3)?;
            Ok(JobRecord {
                id: uuid_at(r, 0)?,
                queue: r.try_get(1)?,
                kind: r.try_get(2)?,
                payload: serde_json::from_str(&payload)?,
                state: state_at(r, 4)?,
                priority: r.try_get(5)?,
                run_at: r.try_get(6)?,
                attempt: r.try_get(7)?,
                max_attempts: r.try_get(8)?,
                singleton_key: r.try_get(9)?,
                group_key: r.try_get(10)?,
                expires_at: r.try_get(11)?,
                lease_owner: r.try_get(12)?,
                lease_until: r.try_get(13)?,
                cancel_requested: r.try_get(14)?,
                last_error: r.try_get(15)?,
                created_at: r.try_get(16)?,
                started_at: r.try_get(17)?,
                finished_at: r.try_get(18)?,
                errors: crate::job::AttemptError::parse_lines(
                    r.try_get::<Option<String>, _>(19)?.as_deref().unwrap_or(""),
                ),
            })
        }
    };
}

pub(crate) use row_decoders;
