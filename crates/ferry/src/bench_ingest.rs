//! `ferry bench ingest`: signed Shopify deliveries over real HTTP on loopback into `ferry serve`
//! (in this process), 5% of them duplicates of earlier ones. Closed loop by default
//! (`--concurrency` senders as fast as answers come); `--rate R` sends on a fixed schedule and
//! measures each latency from its scheduled time, so a slow server cannot hide its queueing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferry_core::Cipher;
use ferry_http::stack::AppConfig;
use ferry_queue::Queue;
use ferry_sync::webhooks::WebhookScheme;
use rand::RngExt;
use serde_json::json;

use crate::bench::{FreshDb, percentile, round2};

#[derive(clap::Args, Debug)]
pub struct IngestArgs {
    /// A PostgreSQL server (a fresh database is created on it) or a new SQLite file.
    /// Default: a temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Requests in flight at once (closed loop), or the most in flight with --rate.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Requests per second on a fixed schedule (open loop).
    #[arg(long)]
    rate: Option<u64>,
    /// On PostgreSQL, skip the machine's ceiling measured in the same run (`pgbench -b
    /// simple-update`, 8 clients, as long as the ingest ran, on a fresh database of the server).
    #[arg(long)]
    no_pgbench: bool,
}

const SECRET: &str = "shpss_bench_ingest_secret";

pub async fn run(a: IngestArgs) -> Result<()> {
    let db = FreshDb::create(a.database_url.as_deref()).await?;
    let result = bench(&db, &a).await;
    db.drop_db().await;
    let mut out = result?;
    if let (Some(server), false) = (&a.database_url, a.no_pgbench)
        && !server.starts_with("sqlite:")
    {
        let tps = pgbench(server, a.seconds).await?;
        let accepted = out["accepted_per_s"].as_f64().unwrap_or(0.0);
        out["pgbench_simple_update_tps_8_clients"] = json!(round2(tps));
        out["ratio_to_pgbench"] = json!(round2(accepted / tps.max(1.0)));
        println!("pgbench -b simple-update, 8 clients, same server: {tps:.0} tps");
    }
    println!("{out}");
    Ok(())
}

/// The server's own ceiling for small write transactions: `pgbench -b simple-update` with 8
/// clients for `seconds`, on a fresh database (scale 8) dropped afterwards. Transactions/s.
async fn pgbench(server: &str, seconds: u64) -> Result<f64> {
    let db = FreshDb::create(Some(server)).await?;
    let run = async {
        let init = tokio::process::Command::new("pgbench")
            .args(["-i", "-q", "-s", "8", &db.url])
            .output()
            .await
            .context("running pgbench -i (PostgreSQL's client tools)")?;
        if !init.status.success() {
            bail!("pgbench -i: {}", String::from_utf8_lossy(&init.stderr));
        }
        let out = tokio::process::Command::new("pgbench")
            .args(["-n", "-b", "simple-update", "-c", "8", "-j", "2"])
            .args(["-T", &seconds.max(1).to_string(), &db.url])
            .output()
            .await?;
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .find_map(|l| l.strip_prefix("tps = "))
            .and_then(|t| t.split_whitespace().next())
            .and_then(|t| t.parse::<f64>().ok())
            .with_context(|| format!("pgbench printed no tps: {text}"))
    };
    let tps = run.await;
    db.drop_db().await;
    tps
}

async fn bench(db: &FreshDb, a: &IngestArgs) -> Result<serde_json::Value> {
    if a.concurrency == 0 || a.seconds == 0 || a.rate == Some(0) {
        bail!("--seconds, --concurrency and --rate must be more than zero");
    }
    let queue = Queue::connect(&db.url).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let cfg = AppConfig::new(Cipher::from_base64(&Cipher::generate_key())?);
    let serving = ferry_http::stack::serve_on(listener, queue.clone(), cfg).await?;
    serving
        .state
        .stores
        .put("bench", WebhookScheme::Shopify, &[SECRET.to_owned()])
        .await?;
    let server = &serving.server;
    let url = format!("{}/webhooks/shopify/bench", server.url());
    println!(
        "backend {}, {} s, {}",
        queue.backend(),
        a.seconds,
        match a.rate {
            Some(r) => format!(
                "open loop at {r} requests/s (at most {} in flight)",
                a.concurrency
            ),
            None => format!("closed loop, {} in flight", a.concurrency),
        }
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(a.concurrency)
        .build()?;
    let next_id = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let duplicates_sent = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(a.seconds);
    let interval = a.rate.map(|r| Duration::from_secs_f64(1.0 / r as f64));
    let mut tasks = tokio::task::JoinSet::new();
    for sender in 0..a.concurrency {
        let (http, url) = (http.clone(), url.clone());
        let (next_id, accepted, dups, errors) = (
            next_id.clone(),
            accepted.clone(),
            duplicates_sent.clone(),
            errors.clone(),
        );
        let senders = a.concurrency as u32;
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut k: u32 = 0;
            loop {
                // Open loop: this sender's k-th slot; closed loop: now.
                let scheduled = match interval {
                    Some(iv) => started + iv * (k * senders + sender as u32),
                    None => Instant::now(),
                };
                k += 1;
                if scheduled >= until {
                    break;
                }
                tokio::time::sleep_until(scheduled.into()).await;
                let fresh = next_id.load(Ordering::Relaxed);
                // 5% duplicates: an id already sent.
                let id = if fresh > 20 && rand::rng().random_range(0..100) < 5 {
                    dups.fetch_add(1, Ordering::Relaxed);
                    rand::rng().random_range(0..fresh)
                } else {
                    next_id.fetch_add(1, Ordering::Relaxed)
                };
                let body =
                    json!({"id": id, "title": "bench", "updated_at": "2026-11-22T00:00:00Z"})
                        .to_string();
                let sig = ferry_mock::shopify_hmac(SECRET, body.as_bytes());
                let sent = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-shopify-hmac-sha256", sig)
                    .header("x-shopify-webhook-id", format!("d-{id}"))
                    .header("x-shopify-topic", "products/update")
                    .body(body)
                    .send()
                    .await;
                match sent.map(|r| r.status().as_u16()) {
                    Ok(202) => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(200) => {}
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                latencies.push(scheduled.elapsed().as_secs_f64() * 1000.0);
            }
            latencies
        });
    }
    let mut lat = Vec::new();
    while let Some(r) = tasks.join_next().await {
        lat.extend(r?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&lat, 0.50), percentile(&lat, 0.99));
    let accepted = accepted.load(Ordering::Relaxed);
    let unique = next_id.load(Ordering::Relaxed);
    let stored = queue.stats("webhooks").await?.ready as u64;
    // At most one job per distinct delivery id sent: anything more is a stored duplicate.
    let duplicates_stored = stored.saturating_sub(unique);
    println!(
        "{} requests in {elapsed:.1} s: {:.0} accepted/s, p50 {p50:.2} ms, p99 {p99:.2} ms, {} duplicates sent, {duplicates_stored} stored, {} errors",
        lat.len(),
        accepted as f64 / elapsed,
        duplicates_sent.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed)
    );
    Ok(json!({
            "bench": "ingest",
            "backend": queue.backend(),
            "concurrency": a.concurrency,
            "rate": a.rate,
            "requests": lat.len(),
            "accepted_per_s": round2(accepted as f64 / elapsed),
            "p50_ms": round2(p50),
            "p99_ms": round2(p99),
            "duplicates_sent": duplicates_sent.load(Ordering::Relaxed),
            "duplicates_stored": duplicates_stored,
            "jobs_stored": stored,
            "errors": errors.load(Ordering::Relaxed),
    }))
}
