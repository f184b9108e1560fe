//! The `Queue`: one API over the PostgreSQL and SQLite engines.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::{PgConnection, Postgres, Sqlite, SqliteConnection};
use tokio::sync::{Notify, broadcast};
use uuid::Uuid;

use crate::backoff::Backoff;
use crate::error::{QueueError, Result};
use crate::job::{
    ClaimedJob, DeadGroup, DeadMatch, Enqueued, JobFilter, JobRecord, JobState, NewJob, OnConflict,
    Outcome, QueueStats,
};
use crate::postgres::{NOTIFY_CHANNEL, PgEngine};
use crate::sqlite::SqliteEngine;
use crate::store::{CronRow, InsertMode, InsertRow, Reason, Transition};
use crate::wake::{NotifyDebouncer, Wakers};
use ferry_core::{Clock, SystemClock, ms};

/// Rows per insert statement: large batches are split so one statement stays bounded.
const INSERT_CHUNK: usize = 10_000;
const CANCEL_CHANNEL: &str = "ferry_cancel";
/// How long a queue's "has group caps" answer is trusted before it is read again.
const CAPS_TTL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Postgres(PgEngine),
    Sqlite(SqliteEngine),
}

/// How to open a queue.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    pub clock: Arc<dyn Clock>,
    /// Pool size on PostgreSQL (SQLite always has one writer). A worker's claims and
    /// acknowledgements use as many connections again, opened as they are needed.
    pub max_connections: u32,
    /// At most one NOTIFY per queue per this window (PostgreSQL).
    pub notify_debounce: Duration,
    /// Apply the queue's migrations on connecting. Off when `url` leads through a transaction
    /// pooler (PgBouncer): the migrator holds a session-level advisory lock, which such a
    /// pooler would leave on whichever server connection it lands on; migrate on a direct
    /// connection first.
    pub migrate: bool,
    /// Where LISTEN connects (PostgreSQL), when not through the pool: a LISTEN is session
    /// state, which a transaction pooler does not keep. None: a connection like the pool's.
    pub listen_url: Option<String>,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            clock: Arc::new(SystemClock),
            max_connections: 16,
            notify_debounce: Duration::from_millis(5),
            migrate: true,
            listen_url: None,
        }
    }
}

/// The result of a cancel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// It was waiting and will never run.
    Cancelled,
    /// It is running: its handler's cancellation token fires; it ends as cancelled unless it
    /// completes first.
    Requested,
    /// It had already finished.
    AlreadyFinished(JobState),
}

struct Inner {
    backend: Backend,
    clock: Arc<dyn Clock>,
    wakers: Wakers,
    debouncer: Option<Arc<NotifyDebouncer>>,
    caps: Mutex<HashMap<String, (bool, Instant)>>,
    migrate: bool,
    listen_url: Option<String>,
}

/// A durable job queue. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("backend", &self.backend())
            .finish()
    }
}

impl Queue {
    /// Opens `postgres://…` or `sqlite:…` and applies the migrations.
    pub async fn connect(url: &str) -> Result<Queue> {
        Queue::connect_with(url, QueueOptions::default()).await
    }

    pub async fn connect_with(url: &str, opts: QueueOptions) -> Result<Queue> {
        let engine = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(PgEngine::connect(url, opts.max_connections, opts.migrate).await?)
        } else if url.starts_with("sqlite:") {
            // One process owns a SQLite file: no pooler, always migrated.
            Backend::Sqlite(SqliteEngine::connect(url).await?)
        } else {
            return Err(QueueError::UnsupportedUrl(redact_url(url)));
        };
        let debouncer = match &engine {
            Backend::Postgres(pg) => Some(NotifyDebouncer::spawn(pg.clone(), opts.notify_debounce)),
            Backend::Sqlite(_) => None,
        };
        Ok(Queue {
            inner: Arc::new(Inner {
                backend: engine,
                clock: opts.clock,
                wakers: Wakers::default(),
                debouncer,
                caps: Mutex::default(),
                migrate: opts.migrate,
                listen_url: opts.listen_url,
            }),
        })
    }

    /// Applies a crate's migrations (see [`ferry_db::Db::migrate_shared`]) through this
    /// queue's connections, or nothing when the queue was opened without migrating
    /// ([`QueueOptions::migrate`]): through a transaction pooler the migrator's session lock
    /// would stay on a pooled server connection and block every later migration, so the
    /// crates above migrate only here.
    pub async fn migrate_shared(
        &self,
        migrator: sqlx::migrate::Migrator,
        earlier_sqlite: &str,
    ) -> std::result::Result<(), sqlx::migrate::MigrateError> {
        if !self.inner.migrate {
            return Ok(());
        }
        self.db().migrate_shared(migrator, earlier_sqlite).await
    }

    pub fn backend(&self) -> &'static str {
        match self.inner.backend {
            Backend::Postgres(_) => "postgres",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    /// The queue's database, for the crates that keep their own tables beside the queue's
    /// (the pool on PostgreSQL, the single writer on SQLite).
    pub fn db(&self) -> ferry_db::Db {
        match &self.inner.backend {
            Backend::Postgres(pg) => ferry_db::Db::Postgres(pg.pool.clone()),
            Backend::Sqlite(s) => ferry_db::Db::Sqlite(s.writer.clone()),
        }
    }

    /// The PostgreSQL pool, for callers that keep their own tables beside the queue's.
    pub fn pg_pool(&self) -> Option<&sqlx::PgPool> {
        match &self.inner.backend {
            Backend::Postgres(pg) => Some(&pg.pool),
            Backend::Sqlite(_) => None,
        }
    }

    /// The SQLite writer pool (one connection), for callers' own tables.
    pub fn sqlite_pool(&self) -> Option<&sqlx::SqlitePool> {
        match &self.inner.backend {
            Backend::Postgres(_) => None,
            Backend::Sqlite(s) => Some(&s.writer),
        }
    }

    // ---- enqueue -------------------------------------------------------------------------

    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued> {
        let mut out = self.enqueue_batch(vec![job]).await?;
        out.pop()
            .ok_or_else(|| QueueError::InvalidJob("nothing was enqueued".into()))
    }

    /// Enqueues many jobs with one statement per 10,000 (each statement is atomic).
    pub async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        let mut out = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(INSERT_CHUNK) {
            let now = self.now_ms();
            let plan = plan(chunk, now)?;
            let queues = queues_of(chunk);
            let led = self.lead(&queues);
            let res = match &self.inner.backend {
                Backend::Postgres(pg) => {
                    let mut conn = pg.pool.acquire().await?;
                    insert_pg(&mut conn, &plan, now, &led).await?
                }
                Backend::Sqlite(s) if plan.mixed() => {
                    let mut tx = s.writer.begin_with("BEGIN IMMEDIATE").await?;
                    let res = insert_sqlite(&mut tx, &plan, now).await?;
                    tx.commit().await?;
                    res
                }
                Backend::Sqlite(s) => {
                    let mut conn = s.writer.acquire().await?;
                    insert_sqlite(&mut conn, &plan, now).await?
                }
            };
            out.extend(res);
            for q in &queues {
                self.announce_inserted(q, led.contains(q));
            }
        }
        Ok(out)
    }

    /// Opens a transaction in which the caller can write its own rows and enqueue jobs: they
    /// commit or roll back together.
    pub async fn begin(&self) -> Result<Tx> {
        let inner = match &self.inner.backend {
            Backend::Postgres(pg) => TxInner::Postgres(pg.pool.begin().await?),
            // IMMEDIATE takes the write lock up front; a deferred transaction that reads first
            // can fail with SQLITE_BUSY when it later writes.
            Backend::Sqlite(s) => TxInner::Sqlite(s.writer.begin_with("BEGIN IMMEDIATE").await?),
        };
        Ok(Tx {
            inner,
            queue: self.clone(),
            touched: Vec::new(),
            notified: Vec::new(),
        })
    }

    /// Wakes local workers now and, on PostgreSQL, other processes through a debounced NOTIFY.
    fn announce(&self, queue: &str) {
        self.announce_inserted(queue, false);
    }

    /// As `announce`, after an insert that already notified `queue` itself when `notified`.
    fn announce_inserted(&self, queue: &str, notified: bool) {
        self.inner.wakers.wake(queue);
        if let Some(n) = &self.inner.debouncer
            && !notified
        {
            n.trail(queue);
        }
    }

    /// Of `queues`, those the next insert should NOTIFY inside its own statement.
    fn lead(&self, queues: &[String]) -> Vec<String> {
        self.inner
            .debouncer
            .as_ref()
            .map(|n| n.lead(queues))
            .unwrap_or_default()
    }

    // ---- claim and finish ------------------------------------------------------------------

    /// Claims up to `n` ready jobs of `queue` in one statement: by priority, then rotating
    /// between fairness groups, within each group in enqueue order, respecting group caps.
    pub async fn claim(
        &self,
        queue: &str,
        owner: &str,
        n: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedJob>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let capped = self.has_caps(queue).await?;
        let now = self.now_ms();
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let lease_until = now.saturating_add(ms(lease));
        let mut jobs = match &self.inner.backend {
            Backend::Postgres(pg) => pg.claim(queue, owner, n, now, lease_until, capped).await?,
            Backend::Sqlite(s) => s.claim(queue, owner, n, now, lease_until, capped).await?,
        };
        // RETURNING has no order; hand jobs out in claim order.
        jobs.sort_by_key(|j| (std::cmp::Reverse(j.priority), j.fair_round, j.id));
        Ok(jobs)
    }

    async fn has_caps(&self, queue: &str) -> Result<bool> {
        if let Some((v, at)) = self.lock_caps().get(queue)
            && at.elapsed() < CAPS_TTL
        {
            return Ok(*v);
        }
        let v = match &self.inner.backend {
            Backend::Postgres(pg) => pg.has_caps(queue).await?,
            Backend::Sqlite(s) => s.has_caps(queue).await?,
        };
        self.lock_caps()
            .insert(queue.to_owned(), (v, Instant::now()));
        Ok(v)
    }

    fn lock_caps(&self) -> std::sync::MutexGuard<'_, HashMap<String, (bool, Instant)>> {
        self.inner.caps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks claimed jobs completed (or deletes them when `delete`). Jobs whose lease this
    /// owner lost are left alone: whoever holds them now decides. (A job this same owner lost
    /// and claimed again is completed by either run's acknowledgement: both did the work.)
    pub async fn complete(&self, owner: &str, done: &[(Uuid, i32)], delete: bool) -> Result<u64> {
        if done.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = done.iter().map(|d| d.0).collect();
        let now = self.now_ms();
        match &self.inner.backend {
            Backend::Postgres(pg) => pg.complete(&ids, owner, now, delete).await,
            Backend::Sqlite(s) => s.complete(&ids, owner, now, delete).await,
        }
    }

    /// [`Queue::complete`] and then [`Queue::claim`] of up to `n` jobs of `queue`, in one
    /// transaction on PostgreSQL: a worker acknowledging one job per transaction takes its next
    /// job with the same commit.
    pub async fn complete_and_claim(
        &self,
        owner: &str,
        done: &[(Uuid, i32)],
        delete: bool,
        queue: &str,
        n: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedJob>> {
        // SQLite commits without a round trip to another process: two statements cost what
        // one does (and an empty side needs no shared statement either).
        let pg = match &self.inner.backend {
            Backend::Postgres(pg) if n > 0 && !done.is_empty() => pg,
            _ => {
                self.complete(owner, done, delete).await?;
                return self.claim(queue, owner, n, lease).await;
            }
        };
        let capped = self.has_caps(queue).await?;
        let ids: Vec<Uuid> = done.iter().map(|d| d.0).collect();
        let now = self.now_ms();
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let lease_until = now.saturating_add(ms(lease));
        let mut jobs = pg
            .complete_and_claim(&ids, owner, now, delete, queue, n, lease_until, capped)
            .await?;
        jobs.sort_by_key(|j| (std::cmp::Reverse(j.priority), j.fair_round, j.id));
        Ok(jobs)
    }

    /// Records a non-successful outcome of a claimed job and returns its new state (`None` if
    /// this owner no longer held it).
    pub async fn finish(
        &self,
        owner: &str,
        id: Uuid,
        attempt: i32,
        outcome: &Outcome,
        backoff: &Backoff,
    ) -> Result<Option<JobState>> {
        let now = self.now_ms();
        let (reason, requeue_at, error) = match outcome {
            Outcome::Completed => {
                let n = self.complete(owner, &[(id, attempt)], false).await?;
                return Ok((n == 1).then_some(JobState::Completed));
            }
            Outcome::Failed { error, retry_in } => {
                let delay =
                    retry_in.unwrap_or_else(|| backoff.delay(attempt, rand::random::<f64>()));
                (
                    Reason::Retry,
                    now.saturating_add(ms(delay)),
                    Some(error.as_str()),
                )
            }
            Outcome::Fatal { error } => (Reason::Dead, now, Some(error.as_str())),
            Outcome::Snoozed { delay } => (Reason::Snooze, now.saturating_add(ms(*delay)), None),
            Outcome::Cancelled => (Reason::Cancel, now, Some("cancelled while running")),
        };
        let t = Transition {
            now,
            id,
            attempt,
            owner,
            reason,
            requeue_at,
            error,
        };
        let state = match &self.inner.backend {
            Backend::Postgres(pg) => pg.finish(&t).await?,
            Backend::Sqlite(s) => s.finish(&t).await?,
        };
        Ok(state)
    }

    /// Extends the leases of running jobs this owner holds. Returns, for each job still held,
    /// whether a cancel was requested; a job missing from the answer was lost (lease lapsed).
    pub async fn heartbeat(
        &self,
        owner: &str,
        ids: &[Uuid],
        lease: Duration,
    ) -> Result<Vec<(Uuid, bool)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let until = self.now_ms().saturating_add(ms(lease));
        match &self.inner.backend {
            Backend::Postgres(pg) => pg.heartbeat(ids, owner, until).await,
            Backend::Sqlite(s) => s.heartbeat(ids, owner, until).await,
        }
    }

    // ---- maintenance -----------------------------------------------------------------------

    /// Puts running jobs whose lease lapsed (their worker died) back in line, attempt counted;
    /// dead if that was their last attempt.
    pub async fn reap_expired_leases(&self) -> Result<Vec<(Uuid, JobState)>> {
        let now = self.now_ms();
        let reaped = match &self.inner.backend {
            Backend::Postgres(pg) => pg.reap(now).await?,
            Backend::Sqlite(s) => s.reap(now).await?,
        };
        if !reaped.is_empty() {
            tracing::warn!(
                count = reaped.len(),
                "requeued jobs whose worker stopped heartbeating"
            );
            for q in self.queue_names().await? {
                self.announce(&q);
            }
        }
        Ok(reaped)
    }

    /// Marks waiting jobs whose deadline passed as expired.
    pub async fn expire_deadlines(&self) -> Result<u64> {
        let now = self.now_ms();
        match &self.inner.backend {
            Backend::Postgres(pg) => pg.expire(now).await,
            Backend::Sqlite(s) => s.expire(now).await,
        }
    }

    /// Deletes completed, cancelled and expired jobs finished longer than `finished` ago and dead
    /// jobs older than `dead`, in bounded chunks.
    pub async fn prune(&self, finished: Duration, dead: Duration) -> Result<u64> {
        let now = self.now_ms();
        let (f, d) = (
            now.saturating_sub(ms(finished)),
            now.saturating_sub(ms(dead)),
        );
        let mut total = 0;
        loop {
            let n = match &self.inner.backend {
                Backend::Postgres(pg) => pg.prune(f, d, 5_000).await?,
                Backend::Sqlite(s) => s.prune(f, d, 5_000).await?,
            };
            total += n;
            if n < 5_000 {
                return Ok(total);
            }
        }
    }

    /// On PostgreSQL, VACUUMs the job table when enough dead row versions piled up (see the
    /// engine); SQLite leaves no dead index entries behind. Returns whether it ran.
    pub async fn vacuum_if_needed(&self, min_dead: u32) -> Result<bool> {
        match &self.inner.backend {
            Backend::Postgres(pg) => pg.vacuum_if_needed(i64::from(min_dead)).await,
            Backend::Sqlite(_) => Ok(false),
        }
    }

    // ---- operations ------------------------------------------------------------------------

    pub async fn cancel(&self, id: Uuid) -> Result<Cancelled> {
        let now = self.now_ms();
        let state = match &self.inner.backend {
            Backend::Postgres(pg) => pg.cancel(id, now).await?,
            Backend::Sqlite(s) => s.cancel(id, now).await?,
        };
        match state {
            Some(JobState::Running) => {
                let _ = self.inner.wakers.cancels.send(id);
                if let Backend::Postgres(pg) = &self.inner.backend {
                    sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(CANCEL_CHANNEL)
                        .bind(id.to_string())
                        .execute(&pg.pool)
                        .await?;
                }
                Ok(Cancelled::Requested)
            }
            Some(_) => Ok(Cancelled::Cancelled),
            None => match self.get(id).await? {
                Some(job) => Ok(Cancelled::AlreadyFinished(job.state)),
                None => Err(QueueError::NotFound(id)),
            },
        }
    }

    /// Puts a dead, cancelled or expired job back in line with fresh attempts. If its singleton
    /// key already has a waiting job, that job is returned instead.
    pub async fn replay(&self, id: Uuid) -> Result<Enqueued> {
        let now = self.now_ms();
        let done = match &self.inner.backend {
            Backend::Postgres(pg) => pg.replay(id, now).await?,
            Backend::Sqlite(s) => s.replay(id, now).await?,
        };
        let job = self.get(id).await?.ok_or(QueueError::NotFound(id))?;
        if done {
            self.announce(&job.queue);
            return Ok(Enqueued { id, inserted: true });
        }
        if matches!(
            job.state,
            JobState::Dead | JobState::Cancelled | JobState::Expired
        ) && let Some(key) = &job.singleton_key
        {
            let waiting = match &self.inner.backend {
                Backend::Postgres(pg) => pg.waiting_with_key(key).await?,
                Backend::Sqlite(s) => s.waiting_with_key(key).await?,
            };
            if let Some(other) = waiting {
                return Ok(Enqueued {
                    id: other,
                    inserted: false,
                });
            }
        }
        Err(QueueError::NotReplayable {
            id,
            state: job.state.to_string(),
        })
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<JobRecord>> {
        match &self.inner.backend {
            Backend::Postgres(pg) => pg.get(id).await,
            Backend::Sqlite(s) => s.get(id).await,
        }
    }

    /// Jobs matching `filter`, by id (creation order), one page at a time.
    pub async fn list(&self, filter: &JobFilter) -> Result<Vec<JobRecord>> {
        let mut f = filter.clone();
        f.limit = f.limit.clamp(1, 1_000);
        match &self.inner.backend {
            Backend::Postgres(pg) => pg.list(&f).await,
            Backend::Sqlite(s) => s.list(&f).await,
        }
    }

    pub async fn stats(&self, queue: &str) -> Result<QueueStats> {
        let now = self.now_ms();
        match &self.inner.backend {
            Backend::Postgres(pg) => pg.stats(queue, now).await,
            Backend::Sqlite(s) => s.stats(queue, now).await,
        }
    }

    /// Every queue's figures with each count stopped at `cap` (a count equal to `cap` means
    /// at least that many), for a screen that must stay fast with millions of jobs.
    pub async fn glance_all(&self, cap: i64) -> Result<Vec<QueueStats>> {
        let now = self.now_ms();
        let names = match &self.inner.backend {
            Backend::Postgres(pg) => pg.queue_names_fast().await?,
            Backend::Sqlite(s) => s.queue_names_fast().await?,
        };
        let mut out = Vec::with_capacity(names.len());
        for q in names {
            out.push(match &self.inner.backend {
                Backend::Postgres(pg) => pg.glance(&q, now, cap).await?,
                Backend::Sqlite(s) => s.glance(&q, now, cap).await?,
            });
        }
        Ok(out)
    }

    /// Dead jobs per group (store) among the first `cap` dead jobs.
    pub async fn dead_by_group(&self, cap: i64) -> Result<Vec<(String, i64)>> {
        match &self.inner.backend {
            Backend::Postgres(pg) => pg.dead_by_group(cap).await,
            Backend::Sqlite(s) => s.dead_by_group(cap).await,
        }
    }

    /// Dead jobs grouped by queue, store and error, the largest groups first.
    pub async fn dead_groups(&self, limit: i64) -> Result<Vec<DeadGroup>> {
        match &self.inner.backend {
            Backend::Postgres(pg) => pg.dead_groups(limit).await,
            Backend::Sqlite(s) => s.dead_groups(limit).await,
        }
    }

    /// Replays up to `limit` dead jobs matching `m` (oldest death first): the ones put back
    /// in line. Bounded, so one click never rewrites an unbounded number of rows; run again
    /// for more.
    pub async fn replay_dead(&self, m: &DeadMatch, limit: i64) -> Result<u64> {
        let ids = match &self.inner.backend {
            Backend::Postgres(pg) => pg.dead_ids(m, limit).await?,
            Backend::Sqlite(s) => s.dead_ids(m, limit).await?,
        };
        let mut replayed = 0;
        for id in ids {
            let Ok(id) = id.parse::<Uuid>() else {
                continue;
            };
            if self.replay(id).await?.inserted {
                replayed += 1;
            }
        }
        Ok(replayed)
    }

    /// Queues that are configured or have waiting, running or dead jobs.
    pub async fn queue_names(&self) -> Result<Vec<String>> {
        match &self.inner.backend {
            Backend::Postgres(pg) => pg.queue_names().await,
            Backend::Sqlite(s) => s.queue_names().await,
        }
    }

    pub async fn stats_all(&self) -> Result<Vec<QueueStats>> {
        let mut out = Vec::new();
        for q in self.queue_names().await? {
            out.push(self.stats(&q).await?);
        }
        Ok(out)
    }

    /// A paused queue keeps accepting jobs but none is claimed until it is resumed.
    pub async fn pause(&self, queue: &str) -> Result<()> {
        self.set_paused(queue, true).await
    }

    pub async fn resume(&self, queue: &str) -> Result<()> {
        self.set_paused(queue, false).await?;
        self.announce(queue);
        Ok(())
    }

    /// Whether `queue` is paused (a worker hands back the jobs it holds in its buffer).
    pub async fn is_paused(&self, queue: &str) -> Result<bool> {
        match &self.inner.backend {
            Backend::Postgres(pg) => pg.is_paused(queue).await,
            Backend::Sqlite(s) => s.is_paused(queue).await,
        }
    }

    async fn set_paused(&self, queue: &str, paused: bool) -> Result<()> {
        match &self.inner.backend {
            Backend::Postgres(pg) => pg.set_paused(queue, paused).await,
            Backend::Sqlite(s) => s.set_paused(queue, paused).await,
        }
    }

    /// At most `cap` running jobs for every group of `queue` that has no cap of its own.
    pub async fn set_default_group_cap(&self, queue: &str, cap: Option<u32>) -> Result<()> {
        let cap = cap.map(|c| i32::try_from(c).unwrap_or(i32::MAX));
        match &self.inner.backend {
            Backend::Postgres(pg) => pg.set_queue_group_cap(queue, cap).await?,
            Backend::Sqlite(s) => s.set_queue_group_cap(queue, cap).await?,
        }
        self.lock_caps().remove(queue);
        Ok(())
    }

    /// At most `cap` running jobs of `group` in `queue` (`None` removes the group's own cap).
    pub async fn set_group_cap(&self, queue: &str, group: &str, cap: Option<u32>) -> Result<()> {
        let cap = cap.map(|c| i32::try_from(c).unwrap_or(i32::MAX));
        match &self.inner.backend {
            Backend::Postgres(pg) => pg.set_group_cap(queue, group, cap).await?,
            Backend::Sqlite(s) => s.set_group_cap(queue, group, cap).await?,
        }
        self.lock_caps().remove(queue);
        Ok(())
    }

    // ---- cron ------------------------------------------------------------------------------

    /// Registers (or updates) a schedule that enqueues `job` at every tick of `expr` (UTC,
    /// five fields or six with seconds). A tick fires once however many workers run it.
    pub async fn register_cron(&self, name: &str, expr: &str, job: &NewJob) -> Result<()> {
        job.validate()?;
        let cron = crate::cron::parse(expr)?;
        let row = CronRow {
            name: name.to_owned(),
            expr: expr.to_owned(),
            queue: job.queue.clone(),
            kind: job.kind.clone(),
            payload: job.payload.clone(),
            next_at: crate::cron::next_after(&cron, expr, self.now_ms())?,
        };
        match &self.inner.backend {
            Backend::Postgres(pg) => pg.cron_upsert(&row).await,
            Backend::Sqlite(s) => s.cron_upsert(&row).await,
        }
    }

    /// Fires the schedules that are due: for each, moves its next tick forward by
    /// compare-and-set and enqueues its job in the same transaction, so of several workers
    /// running this at once exactly one fires each tick. Missed ticks are not replayed.
    pub async fn cron_tick(&self) -> Result<Vec<Enqueued>> {
        let now = self.now_ms();
        let due = match &self.inner.backend {
            Backend::Postgres(pg) => pg.cron_due(now).await?,
            Backend::Sqlite(s) => s.cron_due(now).await?,
        };
        let mut fired = Vec::new();
        for c in due {
            let cron = crate::cron::parse(&c.expr)?;
            let next = crate::cron::next_after(&cron, &c.expr, now)?;
            let job = NewJob::from_json(&c.kind, c.payload.clone())?
                .queue(&c.queue)
                .singleton(&format!("cron:{}", c.name));
            let mut tx = self.begin().await?;
            let won = match &mut tx.inner {
                TxInner::Postgres(t) => PgEngine::cron_advance(t, &c.name, c.next_at, next).await?,
                TxInner::Sqlite(t) => {
                    SqliteEngine::cron_advance(t, &c.name, c.next_at, next).await?
                }
            };
            if won {
                fired.push(tx.enqueue(job).await?);
                tx.commit().await?;
            } else {
                tx.rollback().await?;
            }
        }
        Ok(fired)
    }

    // ---- wake-ups --------------------------------------------------------------------------

    /// The signal that fires when `queue` may have new work.
    pub fn waker(&self, queue: &str) -> Arc<Notify> {
        self.inner.wakers.get(queue)
    }

    /// Ids of running jobs whose cancel was requested in this process (or, once `listen` runs,
    /// anywhere).
    pub fn cancellations(&self) -> broadcast::Receiver<Uuid> {
        self.inner.wakers.cancels.subscribe()
    }

    /// On PostgreSQL, listens for other processes' NOTIFYs until the returned task is aborted;
    /// reconnects on its own. A no-op task on SQLite.
    pub fn listen(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let Backend::Postgres(pg) = &this.inner.backend else {
                return;
            };
            loop {
                match listen_once(&this, pg).await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost; polling until it is back");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        })
    }
}

async fn listen_once(q: &Queue, pg: &PgEngine) -> Result<()> {
    let mut listener = match &q.inner.listen_url {
        Some(url) => sqlx::postgres::PgListener::connect(url).await?,
        None => sqlx::postgres::PgListener::connect_with(&pg.pool).await?,
    };
    listener
        .listen_all([NOTIFY_CHANNEL, CANCEL_CHANNEL])
        .await?;
    loop {
        let n = listener.recv().await?;
        if n.channel() == CANCEL_CHANNEL {
            if let Ok(id) = Uuid::parse_str(n.payload()) {
                let _ = q.inner.wakers.cancels.send(id);
            }
        } else {
            q.inner.wakers.wake(n.payload());
        }
    }
}

/// A transaction on the queue's database (see [`Queue::begin`]).
pub struct Tx {
    inner: TxInner,
    queue: Queue,
    touched: Vec<String>,
    /// Queues whose NOTIFY is part of this transaction (delivered at commit).
    notified: Vec<String>,
}

pub enum TxInner {
    Postgres(sqlx::Transaction<'static, Postgres>),
    Sqlite(sqlx::Transaction<'static, Sqlite>),
}

impl Tx {
    pub async fn enqueue(&mut self, job: NewJob) -> Result<Enqueued> {
        let mut out = self.enqueue_batch(vec![job]).await?;
        out.pop()
            .ok_or_else(|| QueueError::InvalidJob("nothing was enqueued".into()))
    }

    pub async fn enqueue_batch(&mut self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        let now = self.queue.now_ms();
        let mut out = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(INSERT_CHUNK) {
            let plan = plan(chunk, now)?;
            let queues = queues_of(chunk);
            // A queue this transaction already notifies needs no second NOTIFY.
            let fresh: Vec<String> = queues
                .iter()
                .filter(|q| !self.notified.contains(q))
                .cloned()
                .collect();
            out.extend(match &mut self.inner {
                TxInner::Postgres(t) => {
                    let led = self.queue.lead(&fresh);
                    let res = insert_pg(t, &plan, now, &led).await?;
                    self.notified.extend(led);
                    res
                }
                TxInner::Sqlite(t) => insert_sqlite(t, &plan, now).await?,
            });
            for q in queues {
                if !self.touched.contains(&q) {
                    self.touched.push(q);
                }
            }
        }
        Ok(out)
    }

    /// The connection, for the caller's own statements on PostgreSQL.
    pub fn postgres(&mut self) -> Option<&mut PgConnection> {
        match &mut self.inner {
            TxInner::Postgres(t) => Some(t),
            TxInner::Sqlite(_) => None,
        }
    }

    /// The connection, for the caller's own statements on SQLite.
    pub fn sqlite(&mut self) -> Option<&mut SqliteConnection> {
        match &mut self.inner {
            TxInner::Postgres(_) => None,
            TxInner::Sqlite(t) => Some(t),
        }
    }

    /// Commits, then wakes the workers of the queues it enqueued into.
    pub async fn commit(self) -> Result<()> {
        match self.inner {
            TxInner::Postgres(t) => t.commit().await?,
            TxInner::Sqlite(t) => t.commit().await?,
        }
        for q in &self.touched {
            self.queue.announce_inserted(q, self.notified.contains(q));
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        match self.inner {
            TxInner::Postgres(t) => t.rollback().await?,
            TxInner::Sqlite(t) => t.rollback().await?,
        }
        Ok(())
    }
}

/// The distinct queues of `jobs`, in first-seen order.
fn queues_of(jobs: &[NewJob]) -> Vec<String> {
    let mut queues: Vec<String> = Vec::new();
    for j in jobs {
        if !queues.contains(&j.queue) {
            queues.push(j.queue.clone());
        }
    }
    queues
}

/// The rows of one insert, with duplicate singleton keys of the batch folded into their first
/// occurrence (a later `replace` overwrites it).
struct Plan {
    rows: Vec<InsertRow>,
    /// For each input job: its own row id and its singleton key.
    slots: Vec<(Uuid, Option<String>)>,
}

impl Plan {
    /// Whether rows of more than one conflict mode are present (SQLite then needs several
    /// statements and wraps them in a transaction).
    fn mixed(&self) -> bool {
        self.rows
            .first()
            .is_some_and(|f| self.rows.iter().any(|r| r.mode != f.mode))
    }
}

fn plan(jobs: &[NewJob], now: i64) -> Result<Plan> {
    let mut rows: Vec<InsertRow> = Vec::with_capacity(jobs.len());
    let mut by_key: HashMap<&str, usize> = HashMap::new();
    let mut slots = Vec::with_capacity(jobs.len());
    for job in jobs {
        job.validate()?;
        let (run_at, expires_at) = job.resolve(now);
        if let Some(key) = job.singleton_key.as_deref()
            && let Some(&i) = by_key.get(key)
        {
            let row = &mut rows[i];
            if job.on_conflict == OnConflict::Replace {
                row.payload = job.payload.clone();
                row.run_at = run_at;
                row.priority = job.priority;
                row.expires_at = expires_at;
                row.mode = InsertMode::Replace;
            }
            slots.push((row.id, Some(key.to_owned())));
            continue;
        }
        let mode = match (&job.singleton_key, job.on_conflict) {
            (None, _) => InsertMode::Plain,
            (Some(_), OnConflict::Keep) => InsertMode::Keep,
            (Some(_), OnConflict::Replace) => InsertMode::Replace,
        };
        let row = InsertRow {
            id: Uuid::now_v7(),
            queue: job.queue.clone(),
            kind: job.kind.clone(),
            payload: job.payload.clone(),
            priority: job.priority,
            run_at,
            max_attempts: job.max_attempts,
            singleton_key: job.singleton_key.clone(),
            group: job.group.clone(),
            expires_at,
            rank: 0,
            mode,
        };
        slots.push((row.id, row.singleton_key.clone()));
        if let Some(key) = job.singleton_key.as_deref() {
            by_key.insert(key, rows.len());
        }
        rows.push(row);
    }
    // Number the rows within their queue, group and priority, in batch order: the statement
    // gives each the round after its group's last plus this.
    let mut next: HashMap<(&str, &str, i16), i64> = HashMap::new();
    let mut ranks = Vec::with_capacity(rows.len());
    for r in &rows {
        let n = next
            .entry((r.queue.as_str(), r.group.as_str(), r.priority))
            .or_insert(0);
        ranks.push(*n);
        *n += 1;
    }
    for (r, rank) in rows.iter_mut().zip(ranks) {
        r.rank = rank;
    }
    Ok(Plan { rows, slots })
}

fn resolve(plan: &Plan, returned: Vec<(Uuid, Option<String>)>) -> Result<Vec<Enqueued>> {
    let ids: std::collections::HashSet<Uuid> = returned.iter().map(|r| r.0).collect();
    let by_key: HashMap<String, Uuid> = returned
        .into_iter()
        .filter_map(|(id, k)| k.map(|k| (k, id)))
        .collect();
    plan.slots
        .iter()
        .map(|(id, key)| {
            if ids.contains(id) {
                return Ok(Enqueued {
                    id: *id,
                    inserted: true,
                });
            }
            key.as_ref()
                .and_then(|k| by_key.get(k))
                .map(|other| Enqueued {
                    id: *other,
                    inserted: false,
                })
                .ok_or_else(|| QueueError::InvalidJob(format!("job {id} was not stored")))
        })
        .collect()
}

async fn insert_pg(
    conn: &mut PgConnection,
    plan: &Plan,
    now: i64,
    notify: &[String],
) -> Result<Vec<Enqueued>> {
    resolve(plan, PgEngine::insert(conn, &plan.rows, now, notify).await?)
}

async fn insert_sqlite(
    conn: &mut SqliteConnection,
    plan: &Plan,
    now: i64,
) -> Result<Vec<Enqueued>> {
    resolve(plan, SqliteEngine::insert(conn, &plan.rows, now).await?)
}

/// The URL without its secrets, for messages and `ferry config`: the password of its user
/// part, and the value of query parameters that carry one (`?password=`, `sslpassword`,
/// `token`, `secret`, `key` and the like).
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match (base.find("://"), base.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &base[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &base[..s + 3], &creds[..c], &base[at..]),
                None => base.to_owned(),
            }
        }
        _ => base.to_owned(),
    };
    let Some(query) = query else { return base };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_param(k) => format!("{k}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "token",
        "secret",
        "key",
        "signature",
        "sig",
    ]
    .iter()
    .any(|s| n.contains(s))
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_lose_their_secrets_and_keep_the_rest() {
        let cases = [
            (
                "postgres://ferry:s3cret@db:5432/ferry",
                "postgres://ferry:***@db:5432/ferry",
            ),
            (
                "postgres://db/ferry?user=f&password=s3cret&sslmode=require",
                "postgres://db/ferry?user=f&password=***&sslmode=require",
            ),
            (
                "https://pay.example/v1?api_key=abc",
                "https://pay.example/v1?api_key=***",
            ),
            ("sqlite:ferry.db", "sqlite:ferry.db"),
            ("postgres://ferry@db/ferry", "postgres://ferry@db/ferry"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown);
        }
    }
}
