//! `ferry bench ui`: how long `ferry serve` takes to build the dashboard's overview with a
//! large job table (by default 1,000,000 jobs: most completed, some waiting in three queues
//! over 50 stores, some dead), measured over HTTP on loopback with a signed-in session.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use ferry_core::{Cipher, Clock};
use ferry_queue::{NewJob, Queue};
use serde_json::json;

use crate::bench::{FreshDb, percentile, round2};

const ADMIN: &str = "bench-ui-admin-token-0123456789";
const QUEUES: [&str; 3] = ["sync", "webhooks", "orders"];
const STORES: usize = 50;
const BATCH: usize = 10_000;

#[derive(clap::Args, Debug)]
pub struct UiArgs {
    /// A PostgreSQL server (a fresh database is created on it and dropped afterwards) or a new
    /// SQLite file. Default: a temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Jobs in the table.
    #[arg(long, default_value_t = 1_000_000)]
    jobs: usize,
    /// Share of them waiting (ready), and dead; the rest completed.
    #[arg(long, default_value_t = 0.10)]
    waiting_share: f64,
    #[arg(long, default_value_t = 0.01)]
    dead_share: f64,
    /// Stores of the network (a parent and children), each a tile on the overview with its
    /// breaker, budget, lag, last hour and token read per load.
    #[arg(long, default_value_t = 10)]
    network_stores: usize,
    /// Keep the run's PostgreSQL database afterwards, to look into a slow query.
    #[arg(long)]
    keep_database: bool,
    /// Overview loads measured (after 10 unmeasured).
    #[arg(long, default_value_t = 200)]
    loads: usize,
}

pub async fn run(a: UiArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&a.waiting_share)
        || !(0.0..=1.0).contains(&a.dead_share)
        || a.waiting_share + a.dead_share > 1.0
    {
        bail!("--waiting-share and --dead-share are shares of the jobs, together at most 1");
    }
    let db = FreshDb::create(a.database_url.as_deref()).await?;
    let result = bench(&db, &a).await;
    if a.keep_database {
        eprintln!("database kept: {}", ferry_queue::redact_url(&db.url));
    } else {
        db.drop_db().await;
    }
    result
}

async fn bench(db: &FreshDb, a: &UiArgs) -> Result<()> {
    let queue = Queue::connect(&db.url).await?;
    let started = Instant::now();
    fill(&queue, a).await?;
    eprintln!(
        "bench ui: {} jobs in the table ({} waiting, {} dead) after {:.0} s on {}",
        a.jobs,
        (a.jobs as f64 * a.waiting_share) as usize,
        (a.jobs as f64 * a.dead_share) as usize,
        started.elapsed().as_secs_f64(),
        queue.backend()
    );

    let mut cfg = ferry_http::stack::AppConfig::new(Cipher::from_base64(&Cipher::generate_key())?);
    cfg.admin_tokens = vec![ADMIN.to_owned()];
    // The stores' endpoints are never called: loopback addresses are allowed only so they
    // can be added without a network.
    cfg.client.outbound = ferry_connect::Outbound::insecure();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let serving = ferry_http::stack::serve_on(listener, queue.clone(), cfg).await?;
    for i in 0..a.network_stores.min(STORES) {
        let role = if i == 0 {
            ferry_sync::Role::Parent
        } else {
            ferry_sync::Role::Child
        };
        serving
            .engine
            .add_store(
                &format!("store-{i}"),
                role,
                &format!("http://127.0.0.1:9/store-{i}/graphql.json"),
                "shpat_bench_token_not_used",
                "bench-webhook-secret",
                &ferry_sync::Rules::default(),
            )
            .await?;
    }
    samples(&queue, a.network_stores.min(STORES)).await?;
    let base = serving.server.url();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let signed = http
        .post(format!("{base}/ui/signin"))
        .form(&[("token", ADMIN)])
        .send()
        .await?;
    let cookie = signed
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("signing in gave no session cookie")?
        .to_owned();
    let mut times: Vec<f64> = Vec::with_capacity(a.loads);
    for i in 0..a.loads + 10 {
        let t = Instant::now();
        let r = http
            .get(format!("{base}/ui"))
            .header("cookie", &cookie)
            .send()
            .await?;
        let status = r.status();
        let body = r.text().await?;
        let took = t.elapsed().as_secs_f64() * 1000.0;
        if !status.is_success() || !body.contains("<h1>Overview</h1>") {
            bail!("the overview answered {status}");
        }
        if i >= 10 {
            times.push(took);
        }
    }
    // Where the slowest loads fell (early: warming; spread: something periodic).
    let mut slowest: Vec<(usize, f64)> = times.iter().copied().enumerate().collect();
    slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
    let shown: Vec<String> = slowest
        .iter()
        .take(5)
        .map(|(i, t)| format!("#{i} {t:.1} ms"))
        .collect();
    eprintln!("slowest loads: {}", shown.join(", "));
    times.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&times, 0.50), percentile(&times, 0.99));
    eprintln!(
        "overview over {} loads: p50 {p50:.2} ms, p99 {p99:.2} ms",
        a.loads
    );
    println!(
        "{}",
        json!({
            "bench": "ui",
            "database": queue.backend(),
            "jobs": a.jobs,
            "waiting_share": a.waiting_share,
            "dead_share": a.dead_share,
            "loads": a.loads,
            "network_stores": a.network_stores.min(STORES),
            "overview_p50_ms": round2(p50),
            "overview_p99_ms": round2(p99),
        })
    );
    drop(serving);
    Ok(())
}

/// A week of per-minute samples, as workers leave them: every queue's totals and depth, and
/// each network store's outcomes.
async fn samples(queue: &Queue, stores: usize) -> Result<()> {
    let now = ferry_core::SystemClock.now_ms();
    let (to, from) = (now - now % 60_000, now - now % 60_000 - 7 * 24 * 3_600_000);
    // A row per minute from a recursive series (both engines have it).
    let series = "WITH RECURSIVE m(x) AS (SELECT CAST($2 AS BIGINT) UNION ALL SELECT x + 60000 FROM m WHERE x + 60000 <= $3)
        INSERT INTO ferry_queue_samples (queue, group_key, minute_ms, completed, failed, ready, running, dead)";
    let db = queue.db();
    for q in QUEUES {
        let sql = format!("{series} SELECT $1, '', x, 600, 3, 2000, 40, 100 FROM m");
        ferry_db::exec!(&db, sqlx::AssertSqlSafe(sql.as_str()), q, from, to)?;
    }
    for i in 0..stores {
        let sql = format!("{series} SELECT $1, $4, x, 60, 1, NULL, NULL, NULL FROM m");
        ferry_db::exec!(
            &db,
            sqlx::AssertSqlSafe(sql.as_str()),
            "sync",
            from,
            to,
            format!("store-{i}")
        )?;
    }
    Ok(())
}

/// Enqueues the jobs in batches, then finishes the completed and dead shares with one
/// statement each (the bench's own setup, not a path ferry takes).
async fn fill(queue: &Queue, a: &UiArgs) -> Result<()> {
    let mut made = 0;
    while made < a.jobs {
        let n = BATCH.min(a.jobs - made);
        let batch: Vec<NewJob> = (made..made + n)
            .map(|i| {
                NewJob::new("sync.push", &json!({"product": i})).map(|j| {
                    j.queue(QUEUES[i % QUEUES.len()])
                        .group(&format!("store-{}", i % STORES))
                })
            })
            .collect::<std::result::Result<_, _>>()?;
        queue.enqueue_batch(batch).await?;
        made += n;
    }
    let waiting = (a.jobs as f64 * a.waiting_share) as i64;
    let dead = (a.jobs as f64 * a.dead_share) as i64;
    let finished = a.jobs as i64 - waiting;
    let db = queue.db();
    let now = ferry_core::SystemClock.now_ms();
    // Oldest first: the waiting ones are the newest, as in a queue that keeps up.
    ferry_db::exec!(
        &db,
        "UPDATE ferry_jobs SET state = 'completed', attempt = 1, finished_at = $1 WHERE id IN
         (SELECT id FROM ferry_jobs ORDER BY id LIMIT $2)",
        now,
        finished - dead
    )?;
    ferry_db::exec!(
        &db,
        "UPDATE ferry_jobs SET state = 'dead', attempt = max_attempts, finished_at = $1,
         last_error = 'the store refused the write (402)' WHERE id IN
         (SELECT id FROM ferry_jobs WHERE state = 'queued' ORDER BY id LIMIT $2)",
        now,
        dead
    )?;
    // Settled, as a table whose jobs finished one by one over time is: the bulk updates above
    // leave a million dead row versions under the indexes until a vacuum, and statistics from
    // before them.
    let settle = if queue.backend() == "postgres" {
        "VACUUM ANALYZE ferry_jobs"
    } else {
        "ANALYZE"
    };
    ferry_db::exec!(&db, settle)?;
    if queue.backend() == "postgres" {
        // And written out: a checkpoint of the fill's dirty pages would otherwise land in
        // the middle of the measured loads.
        ferry_db::exec!(&db, "CHECKPOINT")?;
    }
    Ok(())
}
