//! `ferry bench api`: worker processes work off a backlog of inventory writes against one
//! simulated store with Shopify's default GraphQL bucket (2,000 points, 100/s). The figure is
//! how much of the budget they used (points spent ÷ points the bucket allowed in the time) and
//! how often the store refused them: pacing before the bucket is empty should use nearly all
//! of it without being throttled, also with several processes sharing the store.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferry_mock::{MockConfig, MockServer};
use ferry_queue::{NewJob, Queue};
use serde_json::json;

use crate::bench::FreshDb;

#[derive(clap::Args, Debug)]
pub struct ApiArgs {
    /// A PostgreSQL server (a fresh database is created on it) or a new SQLite file (one
    /// worker process only). Default: a temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Seconds measured (after a second of warm-up).
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// `ferry worker` processes.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Handlers per worker process.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

fn throttled(p: &ferry_mock::Platform) -> Result<u64> {
    let c = p.counters("bench")?;
    Ok(c.throttled + c.http_429)
}

pub async fn run(a: ApiArgs) -> Result<()> {
    if a.workers > 1
        && !a
            .database_url
            .as_deref()
            .is_some_and(|u| u.starts_with("postgres"))
    {
        bail!(
            "several worker processes need --database-url postgres://… (SQLite has one writer process)"
        );
    }
    let mut figures = Vec::new();
    for unpaced in [false, true] {
        if unpaced {
            println!("peer: the same backlog with pacing off (send, then back off when refused)");
        }
        let db = FreshDb::create(a.database_url.as_deref()).await?;
        let result = bench(&db, &a, unpaced).await;
        db.drop_db().await;
        figures.push(result?);
    }
    let mut out = figures.remove(0);
    out["unpaced_peer"] = figures.remove(0);
    println!("{out}");
    Ok(())
}

async fn bench(db: &FreshDb, a: &ApiArgs, unpaced: bool) -> Result<serde_json::Value> {
    let mock = MockServer::start(MockConfig::default()).await?;
    let p = mock.platform();
    let store = p.create_store(Some("bench"))?;
    p.seed_catalog("bench", 1, 1)?;
    let snap = p.snapshot("bench")?;
    let item = snap["products"][0]["variants"][0]["inventory_item_id"]
        .as_u64()
        .context("the seeded variant")?;
    let location = snap["locations"][0]["id"].as_u64().context("a location")?;
    let (_, size, rate) = p.graphql_bucket("bench")?;
    // More writes than the budget allows in the time, so the workers never run dry.
    let jobs = ((size + rate * (a.seconds + 5) as f64) / 10.0 * 1.5) as usize + 100;
    let queue = Queue::connect(&db.url).await?;
    let url = mock.graphql_url("bench");
    let batch: Vec<NewJob> = (0..jobs)
        .map(|i| {
            NewJob::new(
                "ferry.shopify.adjust",
                &json!({
                    "graphql_url": url,
                    "inventory_item_id": format!("gid://shopify/InventoryItem/{item}"),
                    "location_id": format!("gid://shopify/Location/{location}"),
                    "delta": if i % 2 == 0 { 1 } else { -1 },
                    "key": format!("bench-{i}"),
                }),
            )
        })
        .collect::<Result<_, _>>()?;
    for chunk in batch.chunks(1000) {
        queue.enqueue_batch(chunk.to_vec()).await?;
    }
    println!(
        "backend {}, {} worker process(es) × {} handlers, {jobs} writes queued, bucket {size} points restoring {rate}/s",
        queue.backend(),
        a.workers,
        a.concurrency
    );
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for _ in 0..a.workers {
        children.push(
            tokio::process::Command::new(&exe)
                .args(["worker", "--database-url", &db.url, "--concurrency"])
                .arg(a.concurrency.to_string())
                .env("FERRY_SHOPIFY_TOKEN", &store.access_token)
                // The simulated platform answers on loopback over plain http.
                .env("FERRY_ALLOW_INSECURE_STORE_URLS", "true")
                .envs(unpaced.then_some(("FERRY_BENCH_UNPACED", "1")))
                .env("FERRY_LOG", "error")
                .stdout(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("starting ferry worker")?,
        );
    }
    // Warm-up: the workers start and their budget learns the bucket from the first answers.
    let started = Instant::now();
    while p.counters("bench")?.points_spent == 0 {
        if started.elapsed() > Duration::from_secs(30) {
            bail!("the workers did not start calling the store");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (level0, _, _) = p.graphql_bucket("bench")?;
    let spent0 = p.counters("bench")?.points_spent;
    let throttled0 = throttled(p)?;
    let t0 = Instant::now();
    let mut last = t0;
    while t0.elapsed() < Duration::from_secs(a.seconds) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if last.elapsed() >= Duration::from_secs(5) {
            last = Instant::now();
            println!(
                "  {:>3.0} s: {} points spent, {} throttled",
                t0.elapsed().as_secs_f64(),
                p.counters("bench")?.points_spent - spent0,
                throttled(p)? - throttled0
            );
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let spent = (p.counters("bench")?.points_spent - spent0) as f64;
    let refused = throttled(p)? - throttled0;
    for c in &mut children {
        let _ = c.start_kill();
    }
    let allowed = (size - level0) + rate * elapsed;
    let ratio = spent / allowed;
    println!(
        "points spent {spent:.0} of {allowed:.0} allowed in {elapsed:.1} s: budget used {:.1}%, throttled responses {refused}",
        ratio * 100.0
    );
    let out = json!({
        "bench": "api",
        "backend": queue.backend(),
        "workers": a.workers,
        "concurrency": a.concurrency,
        "seconds": (elapsed * 10.0).round() / 10.0,
        "points_spent": spent,
        "points_allowed": allowed.round(),
        "budget_used_ratio": (ratio * 1000.0).round() / 1000.0,
        "throttled_responses": refused,
        "throttled_per_minute": (refused as f64 / (elapsed / 60.0) * 100.0).round() / 100.0,
    });
    Ok(out)
}
