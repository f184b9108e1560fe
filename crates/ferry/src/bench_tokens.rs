//! `ferry bench tokens`: a network whose stores are reached through an app on the client
//! credentials grant, with tokens that live a few seconds, synced by more than one process on
//! one database while the parent's catalog is edited and every store sells. Counts what the
//! simulated platform saw: tokens granted (renewals), tokens granted for a store while the
//! previous one was still young (two processes renewing at once: must be 0), calls made with an
//! expired token (must be 0), and, once it is quiet, every child against the parent (must
//! match, without a reconciliation to help).

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferry_core::Cipher;
use ferry_http::stack::{Stack, StackConfig};
use ferry_mock::{OrderLine, ProductSpec};
use ferry_queue::{Queue, QueueOptions, WorkerOptions};
use ferry_sync::{Role, Rules};
use rand::{RngExt, SeedableRng};
use serde_json::json;

use crate::bench::{FreshDb, round2};

#[derive(clap::Args, Debug)]
pub struct TokensArgs {
    /// A PostgreSQL server (a fresh database is created on it and dropped afterwards) or a new
    /// SQLite file. Default: a temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    #[arg(long, default_value_t = 3)]
    children: usize,
    /// Products in every store (2 variants each; the children carry the same SKUs).
    #[arg(long, default_value_t = 100)]
    products: usize,
    /// How long every token lives.
    #[arg(long, default_value_t = 5)]
    token_ttl_s: u64,
    /// How long edits and sales run.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Parent catalog edits per second (titles and prices).
    #[arg(long, default_value_t = 2.0)]
    edits_per_s: f64,
    /// Orders per second, each in a store drawn at random.
    #[arg(long, default_value_t = 2.0)]
    sales_per_s: f64,
    /// `ferry worker` processes started beside this one's worker (all renew tokens).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    #[arg(long, default_value_t = 11)]
    seed: u64,
}

const PARENT: &str = "parent";
const APP: &str = "ferry";

/// `ferry worker` processes on `db`, killed when dropped.
fn spawn_workers(
    n: usize,
    db: &str,
    key: &str,
    shop_url: &str,
    public_url: &str,
) -> Result<Vec<tokio::process::Child>> {
    let exe = std::env::current_exe().context("the ferry binary's path")?;
    (0..n)
        .map(|_| {
            tokio::process::Command::new(&exe)
                .args(["worker", "--concurrency", "32", "--reconcile-cron", "off"])
                .env("FERRY_DATABASE_URL", db)
                .env("FERRY_ENCRYPTION_KEY", key)
                .env("FERRY_SHOP_URL", shop_url)
                .env("FERRY_PUBLIC_URL", public_url)
                // The simulated platform answers on loopback over plain http.
                .env("FERRY_ALLOW_INSECURE_STORE_URLS", "true")
                .env("FERRY_LOG", "warn")
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .context("starting a ferry worker")
        })
        .collect()
}

pub async fn run(a: TokensArgs) -> Result<()> {
    if a.children == 0 || a.products == 0 || a.token_ttl_s < 2 {
        bail!("--children and --products must be at least 1, --token-ttl-s at least 2");
    }
    let db = FreshDb::create(a.database_url.as_deref()).await?;
    let result = measure(&db, &a).await;
    db.drop_db().await;
    result
}

async fn measure(db: &FreshDb, a: &TokensArgs) -> Result<()> {
    let mock = crate::simulated::platform(Some(a.seed)).await?;
    let p = mock.platform().clone();
    let scopes = ferry_sync::credentials::NEEDED_SCOPES;
    let app = p.create_app(APP, ferry_mock::DEFAULT_ORGANIZATION, &scopes);
    p.set_token_ttl(Some(Duration::from_secs(a.token_ttl_s)));

    let key = Cipher::generate_key();
    let queue = Queue::connect_with(&db.url, QueueOptions::default()).await?;
    let mut cfg = StackConfig::new(Cipher::from_base64(&key)?);
    cfg.app.engine.public_url = String::new();
    cfg.app.client.outbound = ferry_connect::Outbound::insecure();
    let shop_url = format!("{}/stores/{{shop}}", mock.url());
    cfg.app.engine.shop_url = shop_url.clone();
    cfg.worker = WorkerOptions {
        concurrency: 32,
        poll_interval: Duration::from_millis(100),
        ..WorkerOptions::default()
    };
    let stack = Stack::start(queue, cfg).await?;
    stack
        .engine
        .network()
        .put_app(APP, &app.client_id, &app.client_secret, &scopes.join(","))
        .await?;
    let children: Vec<String> = (1..=a.children).map(|i| format!("child-{i}")).collect();
    let stores: Vec<String> = std::iter::once(PARENT.to_owned())
        .chain(children.iter().cloned())
        .collect();
    for s in &stores {
        let role = if s == PARENT {
            Role::Parent
        } else {
            Role::Child
        };
        crate::simulated::add_app_store(
            &stack,
            &mock,
            s,
            role,
            a.products,
            crate::simulated::PLUS,
            APP,
        )
        .await?;
    }
    let public = stack.server.url().to_owned();
    let mut workers = spawn_workers(a.workers, &db.url, &key, &shop_url, &public)?;
    eprintln!(
        "bench tokens: a parent and {} children, {} products each, {} s tokens, {} processes on {}",
        a.children,
        a.products,
        a.token_ttl_s,
        a.workers + 1,
        ferry_queue::redact_url(&db.url)
    );
    for s in &stores {
        stack.engine.connect_store(s).await?;
    }
    crate::bench_sync::quiet(&stack, &mock, &stores).await?;
    let connected = p.app_counters(&app.client_id);
    eprintln!(
        "  connected; {} tokens granted so far",
        connected.client_credentials
    );

    // Edits and sales at steady rates for the whole run, spread over 100 ms ticks.
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
    let snapshot = p.snapshot(PARENT)?;
    // (product, its first variant) of every parent product.
    let products: Vec<(u64, u64)> = snapshot["products"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["id"].as_u64()?, p["variants"][0]["id"].as_u64()?)))
        .collect();
    let skus: Vec<String> = snapshot["products"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["variants"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v["sku"].as_str().map(str::to_owned))
        .collect();
    let (mut edits, mut orders, mut refused) = (0usize, 0usize, 0usize);
    let started = Instant::now();
    let run_for = Duration::from_secs(a.seconds);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while started.elapsed() < run_for {
        tick.tick().await;
        let t = started.elapsed().as_secs_f64();
        while (edits as f64) < a.edits_per_s * t {
            let (id, variant) = products[rng.random_range(0..products.len())];
            if edits % 2 == 0 {
                let title = format!("Edition {edits} of {id}");
                p.merchant_edit_product(PARENT, id, ProductSpec::titled(title))?;
            } else {
                let price = format!("{}.{:02}", rng.random_range(5..90), edits % 100);
                p.merchant_edit_variant(PARENT, variant, Some(price), None)?;
            }
            edits += 1;
        }
        while (orders as f64) < a.sales_per_s * t {
            let store = &stores[rng.random_range(0..stores.len())];
            let line = OrderLine {
                variant_id: None,
                sku: Some(skus[rng.random_range(0..skus.len())].clone()),
                quantity: rng.random_range(1..=2),
            };
            // Refused when the store is short: a shopper's bad luck, not ferry's.
            if p.place_order(store, &[line]).is_err() {
                refused += 1;
            }
            orders += 1;
        }
        // A progress line every ten seconds.
        if started.elapsed().as_secs().is_multiple_of(10) && started.elapsed().subsec_millis() < 100
        {
            let c = p.app_counters(&app.client_id);
            eprintln!(
                "  {:>3} s: {edits} edits, {orders} orders, {} tokens granted, {} expired calls",
                started.elapsed().as_secs(),
                c.client_credentials,
                c.expired_calls
            );
        }
    }
    let load_done = Instant::now();
    crate::bench_sync::quiet(&stack, &mock, &stores).await?;
    let converged_after_s = load_done.elapsed().as_secs_f64();

    let parent = p.snapshot(PARENT)?;
    let mut problems = Vec::new();
    for c in &children {
        problems.extend(crate::demo::mismatches(
            &parent,
            &p.snapshot(c)?,
            &Rules::default(),
            c,
        ));
    }
    for m in problems.iter().take(10) {
        eprintln!("  mismatch: {m}");
    }
    let dead = stack
        .queue
        .list(&ferry_queue::JobFilter::in_state(
            ferry_queue::JobState::Dead,
            100,
        ))
        .await?
        .len();
    let per_process = jobs_by_process(&stack.queue).await?;
    let workers_alive = workers
        .iter_mut()
        .map(|w| w.try_wait())
        .filter(|r| matches!(r, Ok(None)))
        .count();
    let c = p.app_counters(&app.client_id);
    let out = json!({
        "bench": "tokens",
        "database": if db.url.starts_with("sqlite:") { "sqlite" } else { "postgres" },
        "stores": stores.len(),
        "products": a.products,
        "token_ttl_s": a.token_ttl_s,
        "seconds": a.seconds,
        "processes": a.workers + 1,
        "worker_processes_alive": workers_alive,
        "jobs_run_by_process": per_process,
        "edits": edits,
        "orders": orders,
        "orders_refused_short": refused,
        "token_grants": c.client_credentials,
        "renewals": c.client_credentials.saturating_sub(stores.len() as u64),
        "renewal_races": c.early_grants,
        "requests_failed_on_expiry": c.expired_calls,
        "mismatches": problems.len(),
        "dead_jobs": dead,
        "converged_after_s": round2(converged_after_s),
    });
    println!("{out}");
    for mut w in workers {
        let _ = w.kill().await;
    }
    stack.shutdown().await;
    if workers_alive < a.workers {
        bail!("a worker process stopped during the run");
    }
    Ok(())
}

/// Completed jobs per worker process (most first): both must have worked for the run to
/// have tested anything.
async fn jobs_by_process(queue: &Queue) -> Result<Vec<usize>> {
    let mut by: std::collections::HashMap<String, usize> = Default::default();
    let mut filter = ferry_queue::JobFilter::in_state(ferry_queue::JobState::Completed, 500);
    loop {
        let page = queue.list(&filter).await?;
        let Some(last) = page.last() else { break };
        filter.after = Some(last.id);
        for j in &page {
            // A worker's id is host:pid:suffix; the process is host:pid.
            let owner = j.lease_owner.as_deref().unwrap_or_default();
            let process = owner.rsplit_once(':').map_or(owner, |(p, _)| p);
            *by.entry(process.to_owned()).or_default() += 1;
        }
    }
    let mut counts: Vec<usize> = by.into_values().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    Ok(counts)
}
