//! `ferry bench …`: throughput and latency figures of the queue on a fresh database. Human
//! lines first, the last line one JSON object.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use ferry_queue::{Maintenance, NewJob, Queue, Worker, WorkerOptions};
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Enqueue, process and pickup-latency figures.
    Queue(QueueArgs),
    /// Claim latency with a large number of waiting jobs, against a nearly empty queue.
    Claim(ClaimArgs),
    /// How much of one store's GraphQL budget worker processes use, and how often they are
    /// throttled, working off a backlog of writes against a simulated store.
    Api(crate::bench_api::ApiArgs),
    /// Signed webhook deliveries into the ingress: accepted per second, latency, duplicates.
    Ingest(crate::bench_ingest::IngestArgs),
    /// How long a parent edit takes to reach every child, against a polling peer.
    Sync(crate::bench_sync::SyncArgs),
    /// A full reconciliation pass: products per second and peak memory at several sizes.
    Reconcile(crate::bench_reconcile::ReconcileArgs),
    /// Orders through the orders API: orders per second, latency, double charges (0).
    Orders(crate::bench_orders::OrdersArgs),
    /// What a client with no token can make `ferry serve` do: a signature flood, metric
    /// series, store enumeration, slow connections, /healthz under a flood.
    Abuse(crate::bench_abuse::AbuseArgs),
    /// Stores on an app's client credentials with short-lived tokens, synced by several
    /// processes: renewals, renewal races (0), calls with an expired token (0), mismatches (0).
    Tokens(crate::bench_tokens::TokensArgs),
    /// Two servers and two workers behind PgBouncer, killed and restarted while API faults,
    /// repeated and reordered webhooks and a PostgreSQL restart hit a syncing network: lost,
    /// doubled, mismatched (all 0) and how soon it converges once the faults stop.
    Chaos(crate::bench_chaos::ChaosArgs),
    /// The dashboard's overview with a large job table (1,000,000 jobs by default): its
    /// server time over HTTP, p50 and p99.
    Ui(crate::bench_ui::UiArgs),
    /// The other process of the pickup-latency figure: enqueues jobs at a steady pace, each
    /// carrying the wall-clock moment before its enqueue; prints the enqueue times as JSON.
    #[command(hide = true)]
    PickupEnqueuer(PickupEnqueuerArgs),
}

#[derive(clap::Args, Debug)]
pub struct PickupEnqueuerArgs {
    #[arg(long)]
    database_url: String,
    #[arg(long, default_value = "bench_pickup")]
    queue: String,
    #[arg(long, default_value_t = PICKUP_JOBS)]
    jobs: usize,
    #[arg(long, default_value_t = 10)]
    every_ms: u64,
}

/// Jobs of the pickup-latency figure, one every 10 ms.
const PICKUP_JOBS: usize = 500;

#[derive(clap::Args, Debug, Clone)]
pub struct QueueArgs {
    /// A PostgreSQL server (a fresh database is created on it and dropped afterwards) or a new
    /// SQLite file. Default: a temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Jobs for the batch-enqueue and processing figures.
    #[arg(long, default_value_t = 50_000)]
    jobs: usize,
    /// Handlers running at once (also the most jobs one claim takes).
    #[arg(long, default_value_t = 512)]
    concurrency: usize,
    /// Claim and acknowledge one job per transaction.
    #[arg(long)]
    no_batch: bool,
    /// Concurrent claim loops. Default: 2, or 8 with --no-batch.
    #[arg(long)]
    fetchers: Option<usize>,
    /// Delete jobs as they complete instead of keeping them for an hour (the default).
    #[arg(long)]
    delete_completed: bool,
    /// Jobs per enqueue_batch call.
    #[arg(long, default_value_t = 1_000)]
    batch_size: usize,
    /// Also run peers in this invocation, on the same PostgreSQL server at the same settings
    /// (jobs, concurrency, batching), alternating with ferry: `graphile` (graphile-worker),
    /// `pgboss` (pg-boss); each installed from npm by its script under --peer-dir.
    #[arg(long, requires = "database_url", value_delimiter = ',')]
    peer: Vec<String>,
    /// Concurrencies to measure one after another (default: --concurrency).
    #[arg(long, value_delimiter = ',')]
    concurrencies: Vec<usize>,
    /// Rounds per concurrency, ferry and the peer alternating which goes first.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Where the peers' scripts are.
    #[arg(long, default_value = "bench/peers")]
    peer_dir: std::path::PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct ClaimArgs {
    #[arg(long)]
    database_url: Option<String>,
    /// Waiting jobs in the large case.
    #[arg(long, default_value_t = 1_000_000)]
    waiting: usize,
    /// Fairness groups the waiting jobs are spread over.
    #[arg(long, default_value_t = 1_000)]
    groups: usize,
    /// Claims measured in each case.
    #[arg(long, default_value_t = 1_000)]
    claims: usize,
    /// Jobs per claim.
    #[arg(long, default_value_t = 10)]
    batch: usize,
}

pub async fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Queue(a) if !a.peer.is_empty() || a.concurrencies.len() > 1 => {
            side_by_side(&a).await
        }
        BenchCommand::Queue(a) => {
            let out = queue_once(&a).await?;
            println!("{out}");
            Ok(())
        }
        BenchCommand::Api(a) => crate::bench_api::run(a).await,
        BenchCommand::Ingest(a) => crate::bench_ingest::run(a).await,
        BenchCommand::Sync(a) => crate::bench_sync::run(a).await,
        BenchCommand::Reconcile(a) => crate::bench_reconcile::run(a).await,
        BenchCommand::Orders(a) => crate::bench_orders::run(a).await,
        BenchCommand::Abuse(a) => crate::bench_abuse::run(a).await,
        BenchCommand::Tokens(a) => crate::bench_tokens::run(a).await,
        BenchCommand::Chaos(a) => crate::bench_chaos::run(a).await,
        BenchCommand::Ui(a) => crate::bench_ui::run(a).await,
        BenchCommand::PickupEnqueuer(a) => pickup_enqueuer(a).await,
        BenchCommand::Claim(a) => {
            let db = FreshDb::create(a.database_url.as_deref()).await?;
            let result = bench_claim(&db, &a).await;
            db.drop_db().await;
            result
        }
    }
}

/// A database that exists only for one benchmark run.
pub(crate) struct FreshDb {
    pub(crate) url: String,
    /// (server admin url, database name) when a PostgreSQL database was created.
    pg: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl FreshDb {
    pub(crate) async fn create(url: Option<&str>) -> Result<FreshDb> {
        match url {
            None => {
                let dir = tempfile::tempdir()?;
                let url = format!("sqlite:{}", dir.path().join("bench.db").display());
                Ok(FreshDb {
                    url,
                    pg: None,
                    _dir: Some(dir),
                })
            }
            Some(u) if u.starts_with("sqlite:") => {
                let path = u.trim_start_matches("sqlite:").trim_start_matches("//");
                if std::path::Path::new(path).exists() {
                    bail!("{path} exists; the benchmark needs a new SQLite file");
                }
                Ok(FreshDb {
                    url: u.to_owned(),
                    pg: None,
                    _dir: None,
                })
            }
            Some(u) => {
                let name = format!("ferry_bench_{}", uuid::Uuid::now_v7().simple());
                let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(u)
                    .await
                    .with_context(|| format!("connecting to {}", ferry_queue::redact_url(u)))?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await?;
                let (base, query) = match u.split_once('?') {
                    Some((b, q)) => (b, format!("?{q}")),
                    None => (u, String::new()),
                };
                let base = base.rsplit_once('/').map(|(b, _)| b).unwrap_or(base);
                let url = format!("{base}/{name}{query}");
                Ok(FreshDb {
                    url,
                    pg: Some((u.to_owned(), name)),
                    _dir: None,
                })
            }
        }
    }

    pub(crate) async fn drop_db(&self) {
        if let Some((admin, name)) = &self.pg
            && let Ok(mut c) = <sqlx::PgConnection as sqlx::Connection>::connect(admin).await
        {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut c).await;
        }
    }
}

/// The benchmark's worker on `queue`: the defaults, with the command's concurrency, batching
/// and retention of completed jobs.
fn worker_options(a: &QueueArgs, queue: &str, fetchers: usize) -> WorkerOptions {
    let m = Maintenance::default();
    let keep_finished = if a.delete_completed {
        Duration::ZERO
    } else {
        m.keep_finished
    };
    WorkerOptions {
        queues: vec![queue.to_owned()],
        concurrency: a.concurrency,
        claim_batch: a.concurrency,
        batch: !a.no_batch,
        fetchers,
        maintenance: Maintenance { keep_finished, ..m },
        ..WorkerOptions::default()
    }
}

/// One run of the queue benchmark on a fresh database: its JSON line.
async fn queue_once(a: &QueueArgs) -> Result<serde_json::Value> {
    let db = FreshDb::create(a.database_url.as_deref()).await?;
    let result = bench_queue(&db, a).await;
    db.drop_db().await;
    result
}

/// One run of a peer's script at `a`'s settings: the JSON of its last line.
async fn peer_once(a: &QueueArgs, peer: &str, url: &str) -> Result<serde_json::Value> {
    let dir = match peer {
        "graphile" => a.peer_dir.join("graphile-worker"),
        "pgboss" => a.peer_dir.join("pg-boss"),
        other => bail!("unknown peer {other:?} (graphile, pgboss)"),
    };
    let mut cmd = tokio::process::Command::new(dir.join("run.sh"));
    cmd.arg(url)
        .args(["--jobs", &a.jobs.to_string()])
        .args(["--concurrency", &a.concurrency.to_string()]);
    if a.no_batch {
        cmd.arg("--no-batch");
    }
    let out = cmd
        .output()
        .await
        .with_context(|| format!("running {}", dir.join("run.sh").display()))?;
    // Its figures are the JSON line it printed (a failure while it tears its database down
    // afterwards does not void them).
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .with_context(|| {
            format!(
                "the {peer} benchmark printed no figures: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// Writes the server's dirty pages out before a run, so that no run pays for a checkpoint the
/// previous one's writes made due (each run creates and drops a database and writes tens of
/// megabytes of WAL; a spread checkpoint then writes during the next run of a few seconds).
/// Best effort: a role that may not CHECKPOINT, or a SQLite run, measures as before.
async fn checkpoint(url: &str) {
    if !url.starts_with("postgres") {
        return;
    }
    let Ok(mut c) = <sqlx::PgConnection as sqlx::Connection>::connect(url).await else {
        return;
    };
    if let Err(e) = sqlx::query("CHECKPOINT").execute(&mut c).await {
        eprintln!("no CHECKPOINT before the run ({e}); figures may be noisier");
    }
}

/// Each peer once at `a`'s settings, its line printed and kept in `runs` (one list per peer).
async fn run_peers(a: &QueueArgs, url: &str, runs: &mut [Vec<serde_json::Value>]) -> Result<()> {
    for (p, kept) in a.peer.iter().zip(runs.iter_mut()) {
        checkpoint(url).await;
        let r = peer_once(a, p, url).await?;
        println!("{p}: {r}");
        kept.push(r);
    }
    Ok(())
}

/// ferry and, with --peer, the peers at each concurrency, `rounds` times each, alternating which
/// goes first; every run's line, then per concurrency the medians and ferry's ratio to the peer.
async fn side_by_side(a: &QueueArgs) -> Result<()> {
    let concurrencies = if a.concurrencies.is_empty() {
        vec![a.concurrency]
    } else {
        a.concurrencies.clone()
    };
    let url = a.database_url.clone().unwrap_or_default();
    let mut summary = Vec::new();
    for &c in &concurrencies {
        let at = QueueArgs {
            concurrency: c,
            ..a.clone()
        };
        let mut ours = Vec::new();
        let mut theirs: Vec<Vec<serde_json::Value>> = vec![Vec::new(); a.peer.len()];
        for round in 0..a.rounds.max(1) {
            // Odd rounds run the peers first: neither side always meets a warm server.
            let peers_first = round % 2 == 1;
            if peers_first {
                run_peers(&at, &url, &mut theirs).await?;
            }
            checkpoint(&url).await;
            ours.push(queue_once(&at).await?);
            println!("ferry: {}", ours[ours.len() - 1]);
            if !peers_first {
                run_peers(&at, &url, &mut theirs).await?;
            }
        }
        let med = |runs: &[serde_json::Value], k: &str| {
            let mut v: Vec<f64> = runs.iter().filter_map(|r| r[k].as_f64()).collect();
            v.sort_by(f64::total_cmp);
            percentile(&v, 0.5)
        };
        let mut line = json!({
            "concurrency": c,
            "batch": !a.no_batch,
            "jobs": a.jobs,
            "rounds": a.rounds.max(1),
            "backend": ours.first().map(|r| r["backend"].clone()),
            "delete_completed": a.delete_completed,
        });
        for k in [
            "process_per_s",
            "enqueue_batch_per_s",
            "enqueue_single_per_s",
            "pickup_p50_ms",
            "pickup_p99_ms",
            "pickup_enqueue_p99_ms",
            "pickup_after_commit_p99_ms",
        ] {
            let mine = med(&ours, k);
            line[format!("ferry_{k}")] = json!(round2(mine));
            for (p, runs) in a.peer.iter().zip(&theirs) {
                let other = med(runs, k);
                line[format!("{p}_{k}")] = json!(round2(other));
                if other > 0.0 {
                    line[format!("ratio_{p}_{k}")] = json!(round2(mine / other));
                }
            }
        }
        summary.push(line);
    }
    for line in summary {
        println!("{line}");
    }
    Ok(())
}

async fn bench_queue(db: &FreshDb, a: &QueueArgs) -> Result<serde_json::Value> {
    let q = Queue::connect(&db.url).await?;
    let backend = q.backend();
    println!(
        "backend {backend}, jobs {}, concurrency {}, batch {}",
        a.jobs, a.concurrency, !a.no_batch
    );

    // 1. Single enqueues, each awaited (one transaction each).
    let singles = a.jobs.min(5_000);
    let t = Instant::now();
    for i in 0..singles {
        q.enqueue(NewJob::new("bench.noop", &json!({ "i": i }))?.queue("bench_single"))
            .await?;
    }
    let enqueue_single_per_s = singles as f64 / t.elapsed().as_secs_f64();
    println!("enqueue single: {singles} jobs, {enqueue_single_per_s:.0}/s");

    // 2. Batch enqueue of the jobs the worker will process.
    let t = Instant::now();
    let mut left = a.jobs;
    while left > 0 {
        let n = left.min(a.batch_size.max(1));
        let batch = (0..n)
            .map(|i| NewJob::new("bench.noop", &json!({ "i": i })).map(|j| j.queue("bench")))
            .collect::<Result<Vec<_>, _>>()?;
        q.enqueue_batch(batch).await?;
        left -= n;
    }
    let enqueue_batch_per_s = a.jobs as f64 / t.elapsed().as_secs_f64();
    println!(
        "enqueue batch: {} jobs in batches of {}, {enqueue_batch_per_s:.0}/s",
        a.jobs, a.batch_size
    );

    // 3. Process the pre-enqueued jobs: from worker start until every job is acknowledged.
    let done = Arc::new(AtomicUsize::new(0));
    let all_done = Arc::new(tokio::sync::Notify::new());
    let (d, n, total) = (done.clone(), all_done.clone(), a.jobs);
    let fetchers = a.fetchers.unwrap_or(if a.no_batch { 8 } else { 2 });
    let worker = Worker::builder(q.clone())
        .options(worker_options(a, "bench", fetchers))
        .handle("bench.noop", move |_: serde_json::Value, _| {
            let (d, n) = (d.clone(), n.clone());
            async move {
                if d.fetch_add(1, Ordering::Relaxed) + 1 == total {
                    n.notify_one();
                }
                Ok(())
            }
        })
        .build();
    let stop = CancellationToken::new();
    let t = Instant::now();
    let run = tokio::spawn({
        let (w, s) = (worker.clone(), stop.clone());
        async move { w.run(s).await }
    });
    all_done.notified().await;
    stop.cancel();
    run.await??;
    let process_secs = t.elapsed().as_secs_f64();
    let process_per_s = a.jobs as f64 / process_secs;
    let s = q.stats("bench").await?;
    if s.ready != 0 || s.running != 0 {
        bail!("jobs left after processing: {s:?}");
    }
    println!(
        "process: {} jobs in {process_secs:.2}s, {process_per_s:.0}/s",
        a.jobs
    );

    // 4. Pickup latency: 500 jobs, one every 10 ms, while a worker waits. On PostgreSQL the
    // enqueuer is another process (this binary again), so the wake-up travels by NOTIFY as in
    // a deployment; each job carries the wall-clock moment before its enqueue.
    let samples = Arc::new(Mutex::new(Vec::with_capacity(PICKUP_JOBS)));
    let got = Arc::new(AtomicUsize::new(0));
    let got_all = Arc::new(tokio::sync::Notify::new());
    let (sm, g, ga) = (samples.clone(), got.clone(), got_all.clone());
    let pickup_worker = Worker::builder(q.clone())
        .options(worker_options(a, "bench_pickup", fetchers))
        .handle("bench.pickup", move |p: serde_json::Value, _| {
            let (sm, g, ga) = (sm.clone(), g.clone(), ga.clone());
            async move {
                let (i, sent_us) = (
                    p["i"].as_u64().unwrap_or(0),
                    p["t_us"].as_u64().unwrap_or(0),
                );
                if let Ok(mut v) = sm.lock() {
                    v.push((i as usize, sent_us, epoch_us()));
                }
                if g.fetch_add(1, Ordering::Relaxed) + 1 == PICKUP_JOBS {
                    ga.notify_one();
                }
                Ok(())
            }
        })
        .build();
    let stop = CancellationToken::new();
    let run = tokio::spawn({
        let (w, s) = (pickup_worker.clone(), stop.clone());
        async move { w.run(s).await }
    });
    // Let the worker reach its idle wait (and its LISTEN) before the first job.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let enqueue = if backend == "postgres" {
        let out = tokio::process::Command::new(std::env::current_exe()?)
            .args(["bench", "pickup-enqueuer", "--database-url", &db.url])
            .stderr(std::process::Stdio::inherit())
            .output()
            .await
            .context("starting the pickup enqueuer process")?;
        if !out.status.success() {
            bail!("the pickup enqueuer process failed: {}", out.status);
        }
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.lines().last().unwrap_or_default())
            .context("the pickup enqueuer's figures")?
    } else {
        enqueue_paced(&q, "bench_pickup", PICKUP_JOBS, Duration::from_millis(10)).await?
    };
    all_or_timeout(&got_all, Duration::from_secs(30)).await?;
    stop.cancel();
    run.await??;
    let starts = samples.lock().map(|v| v.clone()).unwrap_or_default();
    let ms = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1000.0;
    let mut lat: Vec<f64> = starts
        .iter()
        .map(|(_, sent, start)| ms(*sent, *start))
        .collect();
    lat.sort_by(f64::total_cmp);
    // From the moment the enqueuer had its commit acknowledged: the part the queue controls
    // (0 when the job started before the acknowledgement reached the enqueuer).
    let done = enqueue["done_us"].as_array().cloned().unwrap_or_default();
    let mut after: Vec<f64> = starts
        .iter()
        .filter_map(|(i, _, start)| Some(ms(done.get(*i)?.as_u64()?, *start)))
        .collect();
    after.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&lat, 0.50), percentile(&lat, 0.99));
    let after_p99 = percentile(&after, 0.99);
    println!(
        "pickup latency: p50 {p50:.2} ms, p99 {p99:.2} ms, max {:.2} ms; the enqueue's commit: p50 {} ms, p99 {} ms; after the commit: p50 {:.2} ms, p99 {after_p99:.2} ms",
        lat.last().copied().unwrap_or(0.0),
        enqueue["enqueue_p50_ms"],
        enqueue["enqueue_p99_ms"],
        percentile(&after, 0.5),
    );

    Ok(json!({
        "backend": backend,
        "jobs": a.jobs,
        "concurrency": a.concurrency,
        "batch": !a.no_batch,
        "fetchers": fetchers,
        "delete_completed": a.delete_completed,
        "enqueue_single_per_s": enqueue_single_per_s.round(),
        "enqueue_batch_per_s": enqueue_batch_per_s.round(),
        "process_per_s": process_per_s.round(),
        "pickup_p50_ms": round2(p50),
        "pickup_p99_ms": round2(p99),
        "pickup_enqueue_p99_ms": enqueue["enqueue_p99_ms"],
        "pickup_after_commit_p99_ms": round2(after_p99),
    }))
}

/// Microseconds since the Unix epoch: one clock for two processes on one machine.
fn epoch_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Enqueues `jobs` pickup jobs into `queue`, one every `every`; as JSON, the enqueue times
/// and the moment (µs since the epoch) each enqueue returned.
async fn enqueue_paced(
    q: &Queue,
    queue: &str,
    jobs: usize,
    every: Duration,
) -> Result<serde_json::Value> {
    let mut took = Vec::with_capacity(jobs);
    let mut done_us = Vec::with_capacity(jobs);
    let mut tick = tokio::time::interval(every);
    for i in 0..jobs {
        tick.tick().await;
        let t = Instant::now();
        q.enqueue(
            NewJob::new("bench.pickup", &json!({ "i": i, "t_us": epoch_us() }))?.queue(queue),
        )
        .await?;
        done_us.push(epoch_us());
        took.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    took.sort_by(f64::total_cmp);
    Ok(json!({
        "done_us": done_us,
        "enqueue_p50_ms": round2(percentile(&took, 0.50)),
        "enqueue_p99_ms": round2(percentile(&took, 0.99)),
    }))
}

async fn pickup_enqueuer(a: PickupEnqueuerArgs) -> Result<()> {
    let q = Queue::connect(&a.database_url).await?;
    let out = enqueue_paced(&q, &a.queue, a.jobs, Duration::from_millis(a.every_ms)).await?;
    println!("{out}");
    Ok(())
}

async fn bench_claim(db: &FreshDb, a: &ClaimArgs) -> Result<()> {
    let q = Queue::connect(&db.url).await?;
    println!(
        "backend {}, waiting {}, groups {}, {} claims of {}",
        q.backend(),
        a.waiting,
        a.groups,
        a.claims,
        a.batch
    );
    let groups = a.groups.max(1);
    let fill = |q: Queue, queue: &'static str, n: usize| async move {
        let mut i = 0;
        while i < n {
            let batch = (i..(i + 10_000).min(n))
                .map(|k| {
                    NewJob::new("bench.noop", &json!({}))
                        .map(|j| j.queue(queue).group(&format!("g{}", k % groups)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            i += batch.len();
            q.enqueue_batch(batch).await?;
        }
        anyhow::Ok(())
    };
    // The peer: the same claims against a queue holding only what they take.
    let small = a.claims * a.batch + 1_000;
    fill(q.clone(), "small", small).await?;
    let (s50, s99) = measure_claims(&q, "small", a.claims, a.batch).await?;
    println!("claim with {small} waiting: p50 {s50:.2} ms, p99 {s99:.2} ms");

    let t = Instant::now();
    fill(q.clone(), "large", a.waiting).await?;
    println!(
        "filled {} waiting jobs in {:.1}s",
        a.waiting,
        t.elapsed().as_secs_f64()
    );
    if let Some(pool) = q.pg_pool() {
        sqlx::query("ANALYZE ferry_jobs").execute(pool).await?;
    }
    let (l50, l99) = measure_claims(&q, "large", a.claims, a.batch).await?;
    println!(
        "claim with {} waiting: p50 {l50:.2} ms, p99 {l99:.2} ms",
        a.waiting
    );
    println!(
        "{}",
        json!({
            "backend": q.backend(),
            "waiting": a.waiting,
            "groups": groups,
            "claim_batch": a.batch,
            "claim_p50_ms": round2(l50),
            "claim_p99_ms": round2(l99),
            "small_queue_claim_p50_ms": round2(s50),
            "small_queue_claim_p99_ms": round2(s99),
        })
    );
    Ok(())
}

/// Claims and completes `claims` batches, timing each claim.
async fn measure_claims(q: &Queue, queue: &str, claims: usize, batch: usize) -> Result<(f64, f64)> {
    let mut lat = Vec::with_capacity(claims);
    for _ in 0..claims {
        let t = Instant::now();
        let jobs = q
            .claim(queue, "bench", batch, Duration::from_secs(60))
            .await?;
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        if jobs.len() != batch {
            bail!("claimed {} of {batch}", jobs.len());
        }
        let done: Vec<_> = jobs.iter().map(|j| (j.id, j.attempt)).collect();
        q.complete("bench", &done, false).await?;
    }
    lat.sort_by(f64::total_cmp);
    Ok((percentile(&lat, 0.5), percentile(&lat, 0.99)))
}

async fn all_or_timeout(n: &tokio::sync::Notify, limit: Duration) -> Result<()> {
    tokio::time::timeout(limit, n.notified())
        .await
        .context("jobs were not all picked up")
}

/// Starts `cmd` (a `ferry serve` or `ferry mock` printing its URL as the last word of its
/// first line): the process, the URL, and the rest of its output.
pub(crate) async fn spawn_listening(
    cmd: &mut tokio::process::Command,
    what: &str,
) -> Result<(
    tokio::process::Child,
    String,
    tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
)> {
    use tokio::io::AsyncBufReadExt;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let stdout = child
        .stdout
        .take()
        .with_context(|| format!("{what}'s output"))?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = lines.next_line().await?;
    let url = first
        .as_deref()
        .and_then(|l| l.rsplit(' ').next())
        .with_context(|| format!("{what} printed no address"))?
        .to_owned();
    Ok((child, url, lines))
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
