//! Workers: typed handlers by kind, a concurrency limit, heartbeats, batched acknowledgements,
//! maintenance (lease reaper, deadlines, cron, retention) and graceful shutdown.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::backoff::Backoff;
use crate::buffer::{Buffer, Held, Target};
use crate::error::Result;
use crate::job::{ClaimedJob, DEFAULT_QUEUE, Job, JobState, Outcome};
use crate::queue::Queue;

/// The shortest stretch over which handlers' completions count as a rate.
const RATE_WINDOW: Duration = Duration::from_millis(20);

/// Without batching, a handler slot claims its next job while the current one runs only when
/// its last job ran shorter than this: ahead of a long run, a claimed job would wait while
/// another worker sat idle.
const CLAIM_AHEAD_UNDER: Duration = Duration::from_millis(20);

/// What a handler knows about the job it runs.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub id: Uuid,
    pub queue: String,
    pub kind: String,
    pub group: String,
    /// 1 on the first run.
    pub attempt: i32,
    pub max_attempts: i32,
    /// Fires when the job is cancelled, its lease is lost, or the worker is shutting down and
    /// the grace period is over. A handler should return soon after.
    pub cancel: CancellationToken,
}

/// Why a handler did not succeed. Any `std::error::Error` converts into a retryable failure,
/// so handlers can use `?`.
pub enum JobError {
    /// Run again after the backoff, or after `after` (a Retry-After); dead when attempts run out.
    Retry {
        message: String,
        after: Option<Duration>,
    },
    /// Never retry: the job can not succeed (a payload that makes no sense).
    Fatal(String),
    /// Run again after this delay without spending an attempt (an open circuit breaker).
    Snooze(Duration),
}

impl JobError {
    pub fn retry(e: impl fmt::Display) -> Self {
        JobError::Retry {
            message: e.to_string(),
            after: None,
        }
    }
    pub fn retry_after(e: impl fmt::Display, after: Duration) -> Self {
        JobError::Retry {
            message: e.to_string(),
            after: Some(after),
        }
    }
    pub fn fatal(e: impl fmt::Display) -> Self {
        JobError::Fatal(e.to_string())
    }
    pub fn snooze(delay: Duration) -> Self {
        JobError::Snooze(delay)
    }
}

impl<E: std::error::Error> From<E> for JobError {
    fn from(e: E) -> Self {
        JobError::retry(e)
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Retry { message, after } => write!(f, "Retry({message:?}, {after:?})"),
            JobError::Fatal(m) => write!(f, "Fatal({m:?})"),
            JobError::Snooze(d) => write!(f, "Snooze({d:?})"),
        }
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = std::result::Result<(), JobError>> + Send>>;
type Handler = Arc<dyn Fn(&str, JobContext) -> BoxFuture + Send + Sync>;

/// Periodic upkeep every worker runs (all of it is safe to run from many workers at once).
#[derive(Debug, Clone)]
pub struct Maintenance {
    pub enabled: bool,
    /// How often to requeue lapsed leases, expire deadlines and fire cron.
    pub interval: Duration,
    /// How often to prune finished jobs.
    pub prune_every: Duration,
    /// How long completed, cancelled and expired jobs are kept. Zero deletes a job as soon as
    /// it completes (the fastest; nothing left to inspect).
    pub keep_finished: Duration,
    /// How long dead jobs are kept for inspection and replay.
    pub keep_dead: Duration,
    /// VACUUM the job table (PostgreSQL) once this many dead row versions, and a tenth of the
    /// live rows, have piled up; zero leaves it to autovacuum.
    pub vacuum_min_dead: u32,
    /// How often to add this worker's counts (and the queues' depth) to the per-minute
    /// samples the dashboard charts; zero records none.
    pub sample_every: Duration,
    /// How long samples are kept.
    pub keep_samples: Duration,
}

impl Default for Maintenance {
    fn default() -> Self {
        Maintenance {
            enabled: true,
            interval: Duration::from_secs(1),
            prune_every: Duration::from_secs(60),
            keep_finished: Duration::from_secs(3600),
            keep_dead: Duration::from_secs(7 * 24 * 3600),
            vacuum_min_dead: 5_000,
            sample_every: Duration::from_secs(60),
            keep_samples: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub queues: Vec<String>,
    /// Handlers running at once.
    pub concurrency: usize,
    /// Most jobs claimed by one statement when there is no buffer.
    pub claim_batch: usize,
    /// Most jobs held claimed ahead of the handlers, per queue: a local buffer refilled in one
    /// statement as it drains (its size follows the rate jobs start at and the claim's round
    /// trip, from the concurrency up to this), leases renewed while held, handed back on
    /// shutdown or pause. 0: claim only for free handler slots. Used when `batch` is on.
    pub buffer: usize,
    /// Claim loops per queue. Several keep claims in flight while others wait on the
    /// database; most useful without batching, where each claim takes one job.
    pub fetchers: usize,
    /// Acknowledge finished jobs in batches (one statement for many). Off: one claim and one
    /// acknowledgement per job, each its own transaction.
    pub batch: bool,
    /// A claimed job's lease; the heartbeat renews it, a dead worker's jobs are reclaimed
    /// once it lapses. Default 5 s with a 1 s heartbeat and reaper: a killed worker's job runs
    /// again elsewhere within about 7 s.
    pub lease: Duration,
    pub heartbeat: Duration,
    /// Claim attempts when no wake-up came (also how soon scheduled jobs are seen).
    pub poll_interval: Duration,
    pub backoff: Backoff,
    /// How long a graceful shutdown waits for running handlers before cancelling them.
    pub shutdown_grace: Duration,
    pub maintenance: Maintenance,
    /// LISTEN for other processes' wake-ups (PostgreSQL). Off behind PgBouncer transaction mode.
    pub listen: bool,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            queues: vec![DEFAULT_QUEUE.to_owned()],
            concurrency: 16,
            claim_batch: 100,
            buffer: 500,
            fetchers: 2,
            batch: true,
            lease: Duration::from_secs(5),
            heartbeat: Duration::from_secs(1),
            poll_interval: Duration::from_millis(500),
            backoff: Backoff::default(),
            shutdown_grace: Duration::from_secs(10),
            maintenance: Maintenance::default(),
            listen: true,
        }
    }
}

pub struct WorkerBuilder {
    queue: Queue,
    opts: WorkerOptions,
    handlers: HashMap<String, Handler>,
}

impl WorkerBuilder {
    pub fn options(mut self, opts: WorkerOptions) -> Self {
        self.opts = opts;
        self
    }
    pub fn queues(mut self, queues: &[&str]) -> Self {
        self.opts.queues = queues.iter().map(|q| (*q).to_owned()).collect();
        self
    }
    pub fn concurrency(mut self, n: usize) -> Self {
        self.opts.concurrency = n.max(1);
        self
    }

    /// Registers the handler of `kind`; its payload is decoded as `P` (a payload that does not
    /// decode makes the job dead at once: it would never decode).
    pub fn handle<P, F, Fut>(mut self, kind: &str, f: F) -> Self
    where
        P: DeserializeOwned + Send + 'static,
        F: Fn(P, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), JobError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let h: Handler = Arc::new(move |payload: &str, ctx: JobContext| {
            let decoded = serde_json::from_str::<P>(payload);
            let f = f.clone();
            Box::pin(async move {
                match decoded {
                    Ok(p) => f(p, ctx).await,
                    Err(e) => Err(JobError::Fatal(format!("payload does not decode: {e}"))),
                }
            })
        });
        self.handlers.insert(kind.to_owned(), h);
        self
    }

    /// Registers the handler of a typed [`Job`].
    pub fn register<J, F, Fut>(self, f: F) -> Self
    where
        J: Job,
        F: Fn(J, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), JobError>> + Send + 'static,
    {
        self.handle::<J, F, Fut>(J::KIND, f)
    }

    pub fn build(self) -> Worker {
        Worker {
            inner: Arc::new(WorkerInner {
                id: worker_id(),
                queue: self.queue,
                opts: self.opts,
                handlers: self.handlers,
                in_flight: Mutex::default(),
                tally: Mutex::default(),
                releasing: Default::default(),
                finished: Default::default(),
            }),
        }
    }
}

struct InFlight {
    attempt: i32,
    cancel: CancellationToken,
    /// The handler returned; only the acknowledgement is pending (no more heartbeats).
    finished: bool,
}

struct WorkerInner {
    id: String,
    /// Set when the grace period is over and running handlers are cancelled: a handler that
    /// stops then is released, not cancelled.
    releasing: std::sync::atomic::AtomicBool,
    queue: Queue,
    opts: WorkerOptions,
    handlers: HashMap<String, Handler>,
    in_flight: Mutex<HashMap<Uuid, InFlight>>,
    /// Outcomes counted since the last sample (see [`Worker::sample`]).
    tally: Mutex<crate::samples::Tally>,
    /// Handlers that have returned, ever (the buffer's size follows their rate).
    finished: std::sync::atomic::AtomicUsize,
}

/// Runs jobs. Cheap to clone.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<WorkerInner>,
}

struct Done {
    id: Uuid,
    attempt: i32,
    outcome: Outcome,
}

impl Worker {
    pub fn builder(queue: Queue) -> WorkerBuilder {
        WorkerBuilder {
            queue,
            opts: WorkerOptions::default(),
            handlers: HashMap::new(),
        }
    }

    /// This worker's lease owner id: host, pid and a random suffix.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Claims and runs one ready job of the worker's queues, in this task, and records its
    /// outcome. For deterministic tests: no heartbeat, no maintenance.
    pub async fn run_one(&self) -> Result<Option<(Uuid, JobState)>> {
        for q in &self.inner.opts.queues {
            let mut jobs = self
                .inner
                .queue
                .claim(q, &self.inner.id, 1, self.inner.opts.lease)
                .await?;
            if let Some(job) = jobs.pop() {
                let token = CancellationToken::new();
                let (id, attempt) = (job.id, job.attempt);
                let (queue, group) = (job.queue.clone(), job.group_key.clone());
                let outcome = self.inner.execute(job, token).await;
                self.inner.count(&queue, &group, &outcome);
                let state = self
                    .inner
                    .queue
                    .finish(
                        &self.inner.id,
                        id,
                        attempt,
                        &outcome,
                        &self.inner.opts.backoff,
                    )
                    .await?;
                return Ok(Some((id, state.unwrap_or(JobState::Running))));
            }
        }
        Ok(None)
    }

    /// Adds what this worker ran since the last call to this minute's samples, and the
    /// queues' depth if no worker recorded it yet this minute. The maintenance loop calls it
    /// every [`Maintenance::sample_every`]; tests call it directly.
    pub async fn sample(&self) -> Result<()> {
        let tally = std::mem::take(&mut *self.inner.lock_tally());
        if !tally.is_empty() {
            self.inner.queue.add_samples(tally).await?;
        }
        self.inner.queue.sample_depth(SAMPLE_COUNT_CAP).await
    }

    /// Runs ready jobs one by one until none is ready; returns how many ran.
    pub async fn drain(&self) -> Result<usize> {
        let mut n = 0;
        while self.run_one().await?.is_some() {
            n += 1;
        }
        Ok(n)
    }

    /// Runs until `shutdown` fires, then stops claiming, lets running handlers finish within
    /// the grace period, cancels the rest and puts their jobs back in line without spending an
    /// attempt.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<()> {
        let w = &self.inner;
        let stop_claiming = shutdown.child_token();
        let background = CancellationToken::new();
        let tasks = TaskTracker::new();
        let handlers = TaskTracker::new();
        let listener = w.opts.listen.then(|| w.queue.listen());

        let (done_tx, done_rx) = mpsc::unbounded_channel::<Done>();
        let acker_stop = CancellationToken::new();
        let acker = tokio::spawn(self.clone().ack_loop(done_rx, acker_stop.clone()));
        tasks.spawn(self.clone().heartbeat_loop(background.clone()));
        tasks.spawn(self.clone().cancel_loop(background.clone()));
        if w.opts.maintenance.enabled {
            tasks.spawn(self.clone().maintenance_loop(background.clone()));
        }
        let permits = Arc::new(Semaphore::new(w.opts.concurrency));
        let mut claimers = Vec::new();
        let buffered = w.opts.batch && w.opts.buffer > 0;
        for q in &w.opts.queues {
            if buffered {
                claimers.push(tokio::spawn(self.clone().buffered_loop(
                    q.clone(),
                    permits.clone(),
                    handlers.clone(),
                    done_tx.clone(),
                    stop_claiming.clone(),
                )));
                continue;
            }
            for _ in 0..w.opts.fetchers.max(1) {
                claimers.push(tokio::spawn(self.clone().claim_loop(
                    q.clone(),
                    permits.clone(),
                    handlers.clone(),
                    done_tx.clone(),
                    stop_claiming.clone(),
                )));
            }
        }
        drop(done_tx);
        for c in claimers {
            let _ = c.await;
        }

        // Shutdown: wait for handlers, then cancel the stragglers and wait once more.
        handlers.close();
        if tokio::time::timeout(w.opts.shutdown_grace, handlers.wait())
            .await
            .is_err()
        {
            tracing::warn!(worker = %w.id, "grace period over; cancelling running handlers");
            w.releasing.store(true, std::sync::atomic::Ordering::SeqCst);
            for f in w.lock_in_flight().values() {
                f.cancel.cancel();
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), handlers.wait()).await;
        }
        // Every handler that ended has sent its outcome: record them all, then stop the acker
        // (a handler that ignores cancellation still holds a sender).
        acker_stop.cancel();
        let _ = acker.await;
        // Anything still held (a handler that ignored cancellation) goes back in line.
        let left: Vec<(Uuid, i32)> = w
            .lock_in_flight()
            .iter()
            .map(|(id, f)| (*id, f.attempt))
            .collect();
        for (id, attempt) in left {
            let release = Outcome::Snoozed {
                delay: Duration::ZERO,
            };
            if let Err(e) = w
                .queue
                .finish(&w.id, id, attempt, &release, &w.opts.backoff)
                .await
            {
                tracing::error!(error = %e, %id, "could not release job at shutdown; its lease will lapse");
            }
        }
        background.cancel();
        tasks.close();
        tasks.wait().await;
        if let Some(l) = listener {
            l.abort();
        }
        Ok(())
    }

    async fn claim_loop(
        self,
        queue: String,
        permits: Arc<Semaphore>,
        handlers: TaskTracker,
        done: mpsc::UnboundedSender<Done>,
        stop: CancellationToken,
    ) {
        let w = &self.inner;
        let waker = w.queue.waker(&queue);
        let batch = if w.opts.batch {
            w.opts.claim_batch.max(1)
        } else {
            1
        };
        let mut failures = 0u32;
        while !stop.is_cancelled() {
            // Wait for one free slot, then take as many more as are free.
            let first = tokio::select! {
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                _ = stop.cancelled() => return,
            };
            let mut slots = vec![first];
            while slots.len() < batch {
                match permits.clone().try_acquire_owned() {
                    Ok(p) => slots.push(p),
                    Err(_) => break,
                }
            }
            let wanted = slots.len();
            let notified = waker.notified();
            let jobs = match w.queue.claim(&queue, &w.id, wanted, w.opts.lease).await {
                Ok(jobs) => {
                    failures = 0;
                    jobs
                }
                Err(e) => {
                    failures += 1;
                    tracing::error!(error = %e, queue, "claim failed");
                    let pause = w.opts.poll_interval * failures.min(10);
                    drop(slots);
                    tokio::select! { _ = tokio::time::sleep(pause) => {}, _ = stop.cancelled() => return }
                    continue;
                }
            };
            let got = jobs.len();
            for job in jobs {
                let Some(permit) = slots.pop() else { break };
                let token = self.hold(&job);
                self.start(job, token, permit, &handlers, &done, Some(stop.clone()));
            }
            drop(slots);
            if got < wanted {
                // The queue is drained (or paused): sleep until woken or the poll interval.
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(w.opts.poll_interval) => {}
                    _ = stop.cancelled() => return,
                }
            }
        }
    }

    /// Marks a claimed job as held by this worker (its lease renewed by the heartbeat from now
    /// on): the token that cancels it.
    fn hold(&self, job: &ClaimedJob) -> CancellationToken {
        let token = CancellationToken::new();
        self.inner.lock_in_flight().insert(
            job.id,
            InFlight {
                attempt: job.attempt,
                cancel: token.clone(),
                finished: false,
            },
        );
        token
    }

    /// Runs a held job in its slot; its outcome goes to the acknowledgements. Without batching,
    /// while `claiming` has not fired, the slot goes on with a line of its own (see `chain`).
    fn start(
        &self,
        job: ClaimedJob,
        token: CancellationToken,
        permit: tokio::sync::OwnedSemaphorePermit,
        handlers: &TaskTracker,
        done: &mpsc::UnboundedSender<Done>,
        claiming: Option<CancellationToken>,
    ) {
        let this = self.clone();
        let done = done.clone();
        let held = Held { job, cancel: token };
        handlers.spawn(async move {
            match claiming {
                Some(claiming) if !this.inner.opts.batch => {
                    this.chain(held, permit, done, claiming).await;
                }
                _ => {
                    let d = this.run_held(held).await.0;
                    drop(permit);
                    let _ = done.send(d);
                }
            }
        });
    }

    /// Runs one held job: its outcome, counted, and how long the handler took.
    async fn run_held(&self, h: Held) -> (Done, Duration) {
        let w = &self.inner;
        let (id, attempt) = (h.job.id, h.job.attempt);
        let queue = h.job.queue.clone();
        let group = h.job.group_key.clone();
        let t = std::time::Instant::now();
        let outcome = if h.cancel.is_cancelled() {
            // Cancelled (or its lease lost) while it waited in the buffer: never started.
            Outcome::Cancelled
        } else {
            w.execute(h.job, h.cancel).await
        };
        let ran = t.elapsed();
        w.count(&queue, &group, &outcome);
        if let Some(f) = w.lock_in_flight().get_mut(&id) {
            f.finished = true;
        }
        w.finished
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = Done {
            id,
            attempt,
            outcome,
        };
        (d, ran)
    }

    /// One handler slot without batching. Each completed job's acknowledgement also claims the
    /// slot's next job, in the same transaction (one commit per job instead of two). While its
    /// jobs are short, the slot keeps one such transaction under way as a job runs, so neither
    /// waits for the other: the database sees about twice the slot's concurrency in
    /// transactions, each still one job's. A job claimed ahead waits for at most one short
    /// run. The slot ends, and its permit goes back to the claim loops, when its line runs dry
    /// or claiming stops; jobs it claimed and never started go back in line.
    async fn chain(
        self,
        first: Held,
        permit: tokio::sync::OwnedSemaphorePermit,
        done: mpsc::UnboundedSender<Done>,
        claiming: CancellationToken,
    ) {
        let w = &self.inner;
        let queue = first.job.queue.clone();
        let mut ahead = VecDeque::from([first]);
        let mut pending: VecDeque<tokio::task::JoinHandle<Vec<Held>>> = VecDeque::new();
        // Cleared when a claim comes back empty: no more claims ahead on a drained queue.
        let mut busy = true;
        loop {
            let Some(h) = ahead.pop_front() else {
                match pending.pop_front() {
                    Some(step) => {
                        let got = step.await.unwrap_or_default();
                        busy &= !got.is_empty();
                        ahead.extend(got);
                        continue;
                    }
                    None => break,
                }
            };
            if claiming.is_cancelled() {
                ahead.push_front(h);
                break;
            }
            let (d, ran) = self.run_held(h).await;
            let chain = !claiming.is_cancelled();
            if chain && d.outcome == Outcome::Completed {
                pending.push_back(self.step(&queue, Some((d.id, d.attempt))));
            } else {
                w.record(vec![d]).await;
            }
            if chain && busy && ran < CLAIM_AHEAD_UNDER && ahead.len() + pending.len() < 2 {
                pending.push_back(self.step(&queue, None));
            }
        }
        // Claims under way may have leased jobs already: take them, then hand back every job
        // this slot never started.
        for step in pending {
            ahead.extend(step.await.unwrap_or_default());
        }
        drop(permit);
        self.hand_back(ahead.into_iter().collect(), &done);
    }

    /// One transaction of a slot's line, under way on its own: acknowledges `completed` (if
    /// any) and claims one job, held (its lease renewed) from the moment it arrives.
    fn step(
        &self,
        queue: &str,
        completed: Option<(Uuid, i32)>,
    ) -> tokio::task::JoinHandle<Vec<Held>> {
        let (this, queue) = (self.clone(), queue.to_owned());
        tokio::spawn(async move {
            let w = &this.inner;
            let jobs = match completed {
                Some((id, attempt)) => {
                    let delete = w.opts.maintenance.keep_finished.is_zero();
                    let r = w
                        .queue
                        .complete_and_claim(
                            &w.id,
                            &[(id, attempt)],
                            delete,
                            &queue,
                            1,
                            w.opts.lease,
                        )
                        .await;
                    w.lock_in_flight().remove(&id);
                    r.unwrap_or_else(|e| {
                        // The job stays running; its lease lapses and it runs again.
                        tracing::error!(error = %e, %id, "could not record a completed job");
                        Vec::new()
                    })
                }
                None => w
                    .queue
                    .claim(&queue, &w.id, 1, w.opts.lease)
                    .await
                    .unwrap_or_else(|e| {
                        tracing::error!(error = %e, queue, "claim failed");
                        Vec::new()
                    }),
            };
            jobs.into_iter()
                .map(|job| {
                    let cancel = this.hold(&job);
                    Held { job, cancel }
                })
                .collect()
        })
    }

    /// The claim loop with a local buffer: claims many jobs per statement into the buffer (in
    /// the background, when it falls to its low mark) and starts them, fairly, as handler
    /// slots free up. Buffered jobs go back in line, without spending an attempt, on shutdown
    /// or when the queue is paused.
    async fn buffered_loop(
        self,
        queue: String,
        permits: Arc<Semaphore>,
        handlers: TaskTracker,
        done: mpsc::UnboundedSender<Done>,
        stop: CancellationToken,
    ) {
        type Refill =
            Pin<Box<dyn Future<Output = (Result<Vec<ClaimedJob>>, Duration, usize)> + Send>>;
        let w = &self.inner;
        let waker = w.queue.waker(&queue);
        let mut buffer = Buffer::default();
        let mut target = Target::new(w.opts.concurrency, w.opts.buffer);
        let mut refill: Option<Refill> = None;
        // Set when a claim found fewer jobs than it asked for (or failed): no claim until a
        // wake-up or this moment.
        let mut idle_until: Option<tokio::time::Instant> = None;
        let mut failures = 0u32;
        let finished = || w.finished.load(std::sync::atomic::Ordering::Relaxed);
        let (mut counted, mut since) = (finished(), std::time::Instant::now());
        let mut pause_check = tokio::time::interval(w.opts.heartbeat);
        pause_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let claim = |want: usize| -> Refill {
            let (q, name, owner, lease) =
                (w.queue.clone(), queue.clone(), w.id.clone(), w.opts.lease);
            Box::pin(async move {
                let t = std::time::Instant::now();
                let r = q.claim(&name, &owner, want, lease).await;
                (r, t.elapsed(), want)
            })
        };
        loop {
            if refill.is_none() && idle_until.is_none() && buffer.len() <= target.low_mark() {
                refill = Some(claim(target.size().saturating_sub(buffer.len()).max(1)));
            }
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                (r, rtt, want) = async {
                    match refill.as_mut() {
                        Some(f) => f.await,
                        None => std::future::pending().await,
                    }
                }, if refill.is_some() => {
                    refill = None;
                    match r {
                        Ok(jobs) => {
                            failures = 0;
                            target.claimed_in(rtt);
                            if since.elapsed() >= RATE_WINDOW {
                                let now = finished();
                                target.finished(now - counted, since.elapsed());
                                (counted, since) = (now, std::time::Instant::now());
                            }
                            if jobs.len() < want {
                                idle_until = Some(tokio::time::Instant::now() + w.opts.poll_interval);
                            }
                            for job in jobs {
                                let cancel = self.hold(&job);
                                buffer.push(Held { job, cancel });
                            }
                        }
                        Err(e) => {
                            failures += 1;
                            tracing::error!(error = %e, queue, "claim failed");
                            idle_until = Some(tokio::time::Instant::now() + w.opts.poll_interval * failures.min(10));
                        }
                    }
                }
                permit = permits.clone().acquire_owned(), if !buffer.is_empty() => {
                    let Ok(permit) = permit else { break };
                    if let Some(h) = buffer.pop() {
                        self.start(h.job, h.cancel, permit, &handlers, &done, None);
                    }
                }
                _ = waker.notified(), if idle_until.is_some() && failures == 0 => idle_until = None,
                _ = async {
                    match idle_until {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                }, if idle_until.is_some() => idle_until = None,
                _ = pause_check.tick(), if !buffer.is_empty() => {
                    if let Ok(true) = w.queue.is_paused(&queue).await {
                        self.hand_back(buffer.drain(), &done);
                    }
                }
            }
        }
        // A claim under way may have leased jobs already: take them, then hand everything back.
        if let Some(f) = refill
            && let Ok(Ok(jobs)) = tokio::time::timeout(Duration::from_secs(5), f)
                .await
                .map(|r| r.0)
        {
            for job in jobs {
                let cancel = self.hold(&job);
                buffer.push(Held { job, cancel });
            }
        }
        self.hand_back(buffer.drain(), &done);
    }

    /// Puts held, never-started jobs back in line without spending an attempt.
    fn hand_back(&self, held: Vec<Held>, done: &mpsc::UnboundedSender<Done>) {
        for h in held {
            let _ = done.send(Done {
                id: h.job.id,
                attempt: h.job.attempt,
                outcome: Outcome::Snoozed {
                    delay: Duration::ZERO,
                },
            });
        }
    }

    async fn ack_loop(self, mut rx: mpsc::UnboundedReceiver<Done>, stop: CancellationToken) {
        loop {
            let first = tokio::select! {
                d = rx.recv() => match d { Some(d) => d, None => return },
                _ = stop.cancelled() => match rx.try_recv() { Ok(d) => d, Err(_) => return },
            };
            let mut batch = vec![first];
            while batch.len() < 2_000 {
                match rx.try_recv() {
                    Ok(d) => batch.push(d),
                    Err(_) => break,
                }
            }
            self.inner.record(batch).await;
        }
    }

    async fn heartbeat_loop(self, stop: CancellationToken) {
        let w = &self.inner;
        let mut tick = tokio::time::interval(w.opts.heartbeat);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! { _ = tick.tick() => {}, _ = stop.cancelled() => return }
            let ids: Vec<Uuid> = w
                .lock_in_flight()
                .iter()
                .filter(|(_, f)| !f.finished)
                .map(|(id, _)| *id)
                .collect();
            if ids.is_empty() {
                continue;
            }
            match w.queue.heartbeat(&w.id, &ids, w.opts.lease).await {
                Ok(held) => {
                    let held: HashMap<Uuid, bool> = held.into_iter().collect();
                    let in_flight = w.lock_in_flight();
                    for id in ids {
                        match (held.get(&id), in_flight.get(&id)) {
                            // Cancel requested, or the lease was lost (someone else may run it).
                            (Some(true), Some(f)) | (None, Some(f)) => f.cancel.cancel(),
                            _ => {}
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "heartbeat failed; leases may lapse"),
            }
        }
    }

    async fn cancel_loop(self, stop: CancellationToken) {
        let mut rx = self.inner.queue.cancellations();
        loop {
            let id = tokio::select! {
                r = rx.recv() => match r {
                    Ok(id) => id,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                },
                _ = stop.cancelled() => return,
            };
            if let Some(f) = self.inner.lock_in_flight().get(&id) {
                f.cancel.cancel();
            }
        }
    }

    async fn maintenance_loop(self, stop: CancellationToken) {
        let w = &self.inner;
        let m = &w.opts.maintenance;
        let mut tick = tokio::time::interval(m.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_prune = tokio::time::Instant::now();
        let mut last_sample = tokio::time::Instant::now();
        loop {
            tokio::select! { _ = tick.tick() => {}, _ = stop.cancelled() => return }
            if let Err(e) = w.queue.reap_expired_leases().await {
                tracing::error!(error = %e, "lease reaper failed");
            }
            if let Err(e) = w.queue.expire_deadlines().await {
                tracing::error!(error = %e, "deadline expiry failed");
            }
            if let Err(e) = w.queue.cron_tick().await {
                tracing::error!(error = %e, "cron tick failed");
            }
            if m.vacuum_min_dead > 0 {
                let t = std::time::Instant::now();
                match w.queue.vacuum_if_needed(m.vacuum_min_dead).await {
                    Ok(true) => {
                        tracing::debug!(took_ms = t.elapsed().as_millis() as u64, "vacuumed jobs")
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "VACUUM of the job table failed"),
                }
            }
            if !m.sample_every.is_zero() && last_sample.elapsed() >= m.sample_every {
                last_sample = tokio::time::Instant::now();
                if let Err(e) = self.sample().await {
                    tracing::warn!(error = %e, "recording the queue samples failed");
                }
            }
            if last_prune.elapsed() >= m.prune_every {
                last_prune = tokio::time::Instant::now();
                if let Err(e) = w.queue.prune_samples(m.keep_samples).await {
                    tracing::warn!(error = %e, "pruning the queue samples failed");
                }
                match w.queue.prune(m.keep_finished, m.keep_dead).await {
                    Ok(n) if n > 0 => tracing::info!(pruned = n, "pruned finished jobs"),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "prune failed"),
                }
            }
        }
    }
}

/// Where a sampled depth count stops (as the dashboard's counts do): fast on a big table.
const SAMPLE_COUNT_CAP: i64 = 10_000;

impl WorkerInner {
    fn lock_tally(&self) -> std::sync::MutexGuard<'_, crate::samples::Tally> {
        self.tally.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a job's outcome for the samples: completed, or failed (a retry or death);
    /// snoozes, cancels and hand-backs are neither.
    fn count(&self, queue: &str, group: &str, outcome: &Outcome) {
        let ok = match outcome {
            Outcome::Completed => true,
            Outcome::Failed { .. } | Outcome::Fatal { .. } => false,
            _ => return,
        };
        self.lock_tally().add(queue, group, ok);
    }

    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, InFlight>> {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn execute(&self, job: ClaimedJob, cancel: CancellationToken) -> Outcome {
        let Some(handler) = self.handlers.get(&job.kind) else {
            return Outcome::Failed {
                error: format!("no handler for kind {:?} on worker {}", job.kind, self.id),
                retry_in: None,
            };
        };
        // Everything the handler logs carries the job it belongs to. Its id alone: the JSON log
        // layer formats a span's fields when the span is made, logged into or not, and four more
        // fields (kind, queue, group, attempt; one lookup away) cost about 7% of batched
        // throughput at concurrency 10.
        let span = tracing::info_span!("job", id = %job.id);
        let ctx = JobContext {
            id: job.id,
            queue: job.queue,
            kind: job.kind,
            group: job.group_key,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            cancel: cancel.clone(),
        };
        let result = tracing::Instrument::instrument(
            AssertUnwindSafe(handler(&job.payload, ctx)).catch_unwind(),
            span,
        )
        .await;
        match result {
            Ok(Ok(())) => Outcome::Completed,
            // Stopped by the shutdown: back in line without spending an attempt (a cancel that
            // was also requested still wins: the database sees cancel_requested).
            Ok(Err(_))
                if cancel.is_cancelled()
                    && self.releasing.load(std::sync::atomic::Ordering::SeqCst) =>
            {
                Outcome::Snoozed {
                    delay: Duration::ZERO,
                }
            }
            Ok(Err(_)) if cancel.is_cancelled() => Outcome::Cancelled,
            Ok(Err(JobError::Retry { message, after })) => Outcome::Failed {
                error: message,
                retry_in: after,
            },
            Ok(Err(JobError::Fatal(error))) => Outcome::Fatal { error },
            Ok(Err(JobError::Snooze(delay))) => Outcome::Snoozed { delay },
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned());
                Outcome::Failed {
                    error: format!("handler panicked: {msg}"),
                    retry_in: None,
                }
            }
        }
    }

    /// Writes outcomes: all successes in one statement, the rest one by one.
    async fn record(&self, batch: Vec<Done>) {
        let delete = self.opts.maintenance.keep_finished.is_zero();
        let ok: Vec<(Uuid, i32)> = batch
            .iter()
            .filter(|d| d.outcome == Outcome::Completed)
            .map(|d| (d.id, d.attempt))
            .collect();
        if let Err(e) = self.queue.complete(&self.id, &ok, delete).await {
            // The jobs stay running; their leases lapse and they run again (at-least-once).
            tracing::error!(error = %e, count = ok.len(), "could not record completed jobs");
        }
        for d in batch.iter().filter(|d| d.outcome != Outcome::Completed) {
            match self
                .queue
                .finish(&self.id, d.id, d.attempt, &d.outcome, &self.opts.backoff)
                .await
            {
                Ok(Some(JobState::Dead)) => {
                    // Its error is in its record, not here: it may quote a platform's answer.
                    tracing::warn!(id = %d.id, "job is dead")
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, id = %d.id, "could not record job outcome"),
            }
        }
        let mut in_flight = self.lock_in_flight();
        for d in &batch {
            in_flight.remove(&d.id);
        }
    }
}

fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}
