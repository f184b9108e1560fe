//! `ferry bench chaos`: the deployed topology as processes — PostgreSQL behind PgBouncer in
//! transaction mode, two `ferry serve` on fixed ports, two `ferry worker` — syncing a
//! simulated parent and children while everything goes wrong: a share of API calls fail (5xx,
//! 429, applied-then-5xx, hangs), webhooks arrive one to three times and out of order, a
//! worker is SIGKILLed every few seconds and restarted, a server likewise, PostgreSQL restarts
//! once; merchants edit the parent, shoppers buy in every store and a client places orders
//! through the orders API, retrying with its idempotency key on whichever server answers.
//! Then the faults stop and it waits for the network to converge, and counts: every webhook
//! acknowledged must have been applied once, no sale lost or counted twice, no duplicate
//! product, no stock difference, no order charged twice.
//!
//! On SQLite (the default) the processes share one file; there is no PgBouncer and no
//! PostgreSQL to restart.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferry_core::Cipher;
use ferry_mock::{Faults, MockServer, OrderLine, ProductSpec};
use ferry_queue::Queue;
use ferry_sync::Rules;
use rand::{RngExt, SeedableRng};
use serde_json::json;
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

use crate::bench::{FreshDb, round2};

const PARENT: &str = "parent";
const TOKEN: &str = "bench-chaos-admin-token-0123456789";
/// Stock of every variant in every store before the run: no sale is ever refused for want of
/// it, so every sale counts and the arithmetic below is exact.
const STOCK: i64 = 100_000;
/// Products whose price never changes: the orders API's client buys these, so the amount it
/// sends is always right.
const ORDER_PRODUCTS: usize = 5;

#[derive(clap::Args, Debug)]
pub struct ChaosArgs {
    /// A PostgreSQL server (a fresh database is created on it and dropped afterwards) or a new
    /// SQLite file. Default: a temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// How long the load and the faults last.
    #[arg(long, default_value_t = 300)]
    seconds: u64,
    #[arg(long, default_value_t = 3)]
    children: usize,
    /// Products in every store (2 variants each; the children carry the same SKUs).
    #[arg(long, default_value_t = 30)]
    products: usize,
    /// Share of API requests that fail: 40% of it 503, 30% 429, 20% writes applied then 500,
    /// 10% never answered.
    #[arg(long, default_value_t = 0.10)]
    fault_share: f64,
    #[arg(long, default_value_t = 10)]
    kill_worker_every_s: u64,
    #[arg(long, default_value_t = 30)]
    kill_server_every_s: u64,
    /// How long a killed server stays down (a worker is started again at once).
    #[arg(long, default_value_t = 2)]
    server_down_s: u64,
    /// Parent edits (titles and prices), shop sales and orders API orders per second.
    #[arg(long, default_value_t = 2.0)]
    edits_per_s: f64,
    #[arg(long, default_value_t = 2.0)]
    sales_per_s: f64,
    #[arg(long, default_value_t = 1.0)]
    orders_per_s: f64,
    /// The PgBouncer binary (1.21 or later); default FERRY_TEST_PGBOUNCER or the PATH.
    #[arg(long)]
    pgbouncer: Option<PathBuf>,
    /// Connect straight to PostgreSQL instead of through PgBouncer.
    #[arg(long)]
    no_pgbouncer: bool,
    /// How PostgreSQL is restarted halfway: `auto` (pg_ctlcluster, fast shutdown, for the
    /// cluster on the URL's port of this machine), `off`, or a shell command.
    #[arg(long, default_value = "auto")]
    postgres_restart: String,
    /// The longest wait for convergence once the faults stop.
    #[arg(long, default_value_t = 300)]
    converge_timeout_s: u64,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Keep the run's PostgreSQL database (and the logs) afterwards, to look into a failure
    /// (a temporary SQLite file goes with its directory: give `--database-url sqlite:PATH`).
    #[arg(long)]
    keep_database: bool,
}

pub async fn run(a: ChaosArgs) -> Result<()> {
    if a.children == 0 || a.products <= ORDER_PRODUCTS || a.seconds == 0 {
        bail!("--children and --seconds must be at least 1, --products more than {ORDER_PRODUCTS}");
    }
    if !(0.0..=1.0).contains(&a.fault_share) {
        bail!("--fault-share is between 0 and 1");
    }
    let db = FreshDb::create(a.database_url.as_deref()).await?;
    let logs = tempfile::Builder::new().prefix("ferry-chaos-").tempdir()?;
    let result = chaos(&db, &a, logs.path()).await;
    if a.keep_database {
        eprintln!("database kept: {}", ferry_queue::redact_url(&db.url));
    } else {
        db.drop_db().await;
    }
    if result.is_err() || a.keep_database {
        // What the processes logged is the first thing to read after a failure.
        eprintln!("process logs kept in {}", logs.keep().display());
    }
    result
}

/// A `ferry` process the bench starts, kills and starts again: its arguments, its variables,
/// and its standard error appended to a log file.
struct Proc {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    /// For a server: its URL, polled until it answers after a start.
    url: Option<String>,
    child: Option<Child>,
}

impl Proc {
    fn new(name: &str, args: &[&str], env: Vec<(String, String)>, logs: &Path) -> Proc {
        Proc {
            name: name.to_owned(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            env,
            log: logs.join(format!("{name}.log")),
            url: None,
            child: None,
        }
    }

    async fn start(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let exe = std::env::current_exe().context("the ferry binary's path")?;
        let child = Command::new(exe)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.name))?;
        self.child = Some(child);
        if let Some(url) = &self.url {
            let http = reqwest::Client::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let up = http
                    .get(format!("{url}/healthz"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if up {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{} did not answer /healthz within 60 s", self.name);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// SIGKILL, and wait for it to be gone.
    async fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// Whether the process ended without being killed by the bench.
    fn died(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }
}

/// What the chaos did.
#[derive(Default, Debug)]
struct Kills {
    workers: u64,
    servers: u64,
    postgres_restarts: u64,
    /// Processes that ended by themselves (and were started again).
    crashes: u64,
}

/// What the orders API's client saw.
#[derive(Default, Debug)]
struct OrdersSeen {
    confirmed: u64,
    /// Answered with an error that is final (declined, refused): no sale.
    refused: u64,
    /// No final answer within two minutes of retrying.
    unresolved: u64,
    /// Retries with the same key (after an error, a dead server or a 409).
    retries: u64,
    /// Units sold per SKU by confirmed orders.
    sold: HashMap<String, i64>,
}

async fn chaos(db: &FreshDb, a: &ChaosArgs, logs: &Path) -> Result<()> {
    let postgres = !db.url.starts_with("sqlite:");
    let bouncer = if postgres && !a.no_pgbouncer {
        let binary = crate::pgbouncer::find(a.pgbouncer.as_deref())
            .map_err(|problem| anyhow::anyhow!("{problem}; or run with --no-pgbouncer"))?;
        Some(crate::pgbouncer::Bouncer::start(&binary, &db.url).await?)
    } else {
        None
    };
    let restart = if postgres {
        postgres_restart_command(&a.postgres_restart, &db.url)?
    } else {
        None
    };
    let pooled = match &bouncer {
        Some(b) => b.url_for(&db.url)?,
        None => db.url.clone(),
    };

    // The simulated platform, in this process: it is not what is being killed.
    let mock = crate::simulated::platform(Some(a.seed)).await?;
    let p = mock.platform().clone();
    let children: Vec<String> = (1..=a.children).map(|i| format!("child-{i}")).collect();
    let stores: Vec<String> = std::iter::once(PARENT.to_owned())
        .chain(children.iter().cloned())
        .collect();
    for s in &stores {
        p.create_store(Some(s))?;
        p.seed_catalog(s, a.products, 2)?;
        p.set_graphql_bucket(s, crate::simulated::PLUS.0, crate::simulated::PLUS.1)?;
        for v in p.variants(s)? {
            if let Some(item) = v["inventory_item_id"].as_u64() {
                p.merchant_set_stock(s, item, None, STOCK)?;
            }
        }
    }
    let parent_info = p.store_info(PARENT)?;

    let key = Cipher::generate_key();
    let ports = [free_port()?, free_port()?];
    let servers: Vec<String> = ports
        .iter()
        .map(|port| format!("http://127.0.0.1:{port}"))
        .collect();
    let mut env: Vec<(String, String)> = vec![
        ("FERRY_DATABASE_URL".into(), pooled.clone()),
        ("FERRY_ENCRYPTION_KEY".into(), key.clone()),
        // The simulated platform answers on loopback over plain http.
        ("FERRY_ALLOW_INSECURE_STORE_URLS".into(), "true".into()),
        ("FERRY_LOG".into(), "warn".into()),
        ("FERRY_ADMIN_TOKENS".into(), TOKEN.into()),
        (
            "FERRY_PAYMENTS_URL".into(),
            format!("{}/stores/{PARENT}/payments/v1", mock.url()),
        ),
        (
            "FERRY_PAYMENTS_TOKEN".into(),
            parent_info.access_token.clone(),
        ),
        ("FERRY_ORDERS_CREATE_PER_MIN".into(), "1000000".into()),
        ("FERRY_ORDERS_DETAIL_PER_MIN".into(), "1000000".into()),
        // An order a killed server left half done is finished by a worker this soon.
        ("FERRY_ORDERS_RECOVER_AFTER_S".into(), "5".into()),
    ];
    if bouncer.is_some() {
        // Migrations and LISTEN need a session of their own: straight to PostgreSQL.
        env.push(("FERRY_DIRECT_DATABASE_URL".into(), db.url.clone()));
    }
    let run_once = |args: &[&str], extra: &[(&str, &str)]| {
        let mut c = Command::new(std::env::current_exe()?);
        c.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .envs(extra.iter().copied())
            // The bench's own steps go straight to the database, like a `ferry migrate` job.
            .env("FERRY_DATABASE_URL", &db.url)
            .env_remove("FERRY_DIRECT_DATABASE_URL");
        anyhow::Ok(c)
    };
    succeed(run_once(&["migrate"], &[])?).await?;

    let mut procs: Vec<Proc> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let listen = format!("127.0.0.1:{port}");
        let mut s = Proc::new(
            &format!("serve-{}", i + 1),
            &["serve", "--listen", &listen],
            env.clone(),
            logs,
        );
        s.url = Some(servers[i].clone());
        procs.push(s);
    }
    for (i, server) in servers.iter().enumerate() {
        let mut e = env.clone();
        // Each worker subscribes the stores it connects to its own server's URL, so both
        // servers take webhooks.
        e.push(("FERRY_PUBLIC_URL".into(), server.clone()));
        procs.push(Proc::new(
            &format!("worker-{}", i + 1),
            &["worker", "--concurrency", "16", "--reconcile-cron", "off"],
            e,
            logs,
        ));
    }
    for proc in &mut procs {
        proc.start().await?;
    }
    eprintln!(
        "bench chaos: a parent and {} children, {} products each; 2 servers and 2 workers on {}{}; logs in {}",
        a.children,
        a.products,
        ferry_queue::redact_url(&db.url),
        if bouncer.is_some() {
            " through PgBouncer"
        } else {
            ""
        },
        logs.display()
    );
    for s in &stores {
        let info = p.store_info(s)?;
        let role = if s == PARENT { "parent" } else { "child" };
        let url = mock.graphql_url(s);
        succeed(run_once(
            &["network", "add", s, "--role", role, "--graphql-url", &url],
            &[
                ("FERRY_STORE_TOKEN", info.access_token.as_str()),
                ("FERRY_WEBHOOK_SECRET", info.webhook_secret.as_str()),
            ],
        )?)
        .await?;
        succeed(run_once(&["network", "connect", s], &[])?).await?;
    }
    let queue = Queue::connect(&db.url).await?;
    wait_until_settled(&queue, &mock, &stores, Duration::from_secs(300)).await?;
    let before = check(&mock, &stores, &BTreeMap::new(), &HashMap::new())?;
    if !before.problems.is_empty() {
        bail!(
            "the children do not match the parent after connecting: {:?}",
            &before.problems[..before.problems.len().min(5)]
        );
    }
    let initial = parent_stock(&mock)?;
    eprintln!("  connected; faults on for {} s", a.seconds);

    // The faults.
    let f = a.fault_share;
    let faults = Faults {
        error_5xx: 0.4 * f,
        throttle_429: 0.3 * f,
        retry_after_s: 1,
        applied_then_5xx: 0.2 * f,
        hang: 0.1 * f,
        webhook_duplicate: 0.5,
        webhook_copies_max: 3,
        webhook_hold: 0.25,
        webhook_hold_ms: 3_000,
        ..Faults::default()
    };
    for s in &stores {
        p.set_faults(s, faults.clone())?;
    }

    // The chaos: kills and restarts on their own task, while the load runs here.
    let stop = Arc::new(AtomicBool::new(false));
    let chaos_task = tokio::spawn(kill_loop(
        procs,
        stop.clone(),
        Duration::from_secs(a.kill_worker_every_s.max(1)),
        Duration::from_secs(a.kill_server_every_s.max(1)),
        Duration::from_secs(a.server_down_s),
        restart.map(|cmd| (Duration::from_secs(a.seconds) / 2, cmd)),
    ));
    let orders = Arc::new(Mutex::new(OrdersSeen::default()));
    let (sold, edits, sales, order_tasks) = load(&mock, &stores, &servers, &orders, a).await?;
    stop.store(true, Ordering::Relaxed);
    let (mut procs, kills) = chaos_task.await??;

    // Quiet: faults off, wait for every order's final answer and for the network to settle.
    let quiet_from = Instant::now();
    for s in &stores {
        p.set_faults(s, Faults::default())?;
    }
    for t in order_tasks {
        let _ = t.await;
    }
    let orders = std::mem::take(&mut *orders.lock().await);
    let mut sold = sold;
    for (sku, n) in &orders.sold {
        *sold.entry(sku.clone()).or_default() += n;
    }
    let expected: HashMap<String, i64> = initial
        .iter()
        .map(|(sku, n)| (sku.clone(), n - sold.get(sku).copied().unwrap_or(0)))
        .collect();
    let deadline = quiet_from + Duration::from_secs(a.converge_timeout_s);
    let mut converged_after_s = None;
    let mut last = check(&mock, &stores, &initial, &expected)?;
    while Instant::now() < deadline {
        if settled(&queue, &mock, &stores).await {
            last = check(&mock, &stores, &initial, &expected)?;
            if last.problems.is_empty() {
                converged_after_s = Some(quiet_from.elapsed().as_secs_f64());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if converged_after_s.is_some() {
        // Still settled a few seconds on: nothing was left on its way.
        tokio::time::sleep(Duration::from_secs(3)).await;
        last = check(&mock, &stores, &initial, &expected)?;
    }
    for m in last.problems.iter().take(10) {
        eprintln!("  problem: {m}");
    }

    let webhooks = webhook_figures(&queue, &mock, &stores).await?;
    let charges = p
        .payment_intents()
        .iter()
        .filter(|i| i["status"] == "succeeded")
        .count() as u64;
    let dead = queue
        .list(&ferry_queue::JobFilter::in_state(
            ferry_queue::JobState::Dead,
            100,
        ))
        .await?
        .len();
    let retried: Option<(i64,)> = ferry_db::row!(
        &queue.db(),
        (i64,),
        "SELECT COUNT(*) FROM ferry_jobs WHERE state = 'completed' AND attempt > 1"
    )?;
    // The bench never counts stock by hand: every change ferry took for a count is a sale or
    // a write of its own it failed to recognise.
    let counts: Option<(i64,)> = ferry_db::row!(
        &queue.db(),
        (i64,),
        "SELECT COUNT(*) FROM ferry_levels WHERE last_set_ms > 0"
    )?;
    let false_counts = counts.map_or(0, |(n,)| n as u64);
    let lost = webhooks.acknowledged.saturating_sub(webhooks.applied) + last.units_missing;
    let doubled = last.duplicate_products + last.units_extra;
    let out = json!({
        "bench": "chaos",
        "database": if postgres { "postgres" } else { "sqlite" },
        "pgbouncer": bouncer.is_some(),
        "seconds": a.seconds,
        "stores": stores.len(),
        "products": a.products,
        "fault_share": a.fault_share,
        "edits": edits,
        "shop_sales": sales,
        "orders_confirmed": orders.confirmed,
        "orders_refused": orders.refused,
        "orders_unresolved": orders.unresolved,
        "order_retries": orders.retries,
        "api_faults_injected": stores.iter().filter_map(|s| p.faults_injected(s).ok()).sum::<u64>(),
        "webhooks_acknowledged": webhooks.acknowledged,
        "webhook_copies_sent": webhooks.copies,
        "webhook_retries": webhooks.retries,
        "webhooks_abandoned": webhooks.abandoned,
        "applied_exactly_once": webhooks.applied,
        "lost": lost,
        "doubled": doubled,
        "stock_mismatches": last.stock_mismatches,
        "false_stock_counts": false_counts,
        "catalog_mismatches": last.catalog_mismatches,
        "orders_double_charged": charges.saturating_sub(orders.confirmed),
        "dead_jobs": dead,
        "jobs_completed_after_a_retry": retried.map_or(0, |(n,)| n),
        "converged_after_s": converged_after_s.map(round2),
        "kills": {
            "workers": kills.workers,
            "servers": kills.servers,
            "postgres_restarts": kills.postgres_restarts,
            "crashes": kills.crashes,
        },
    });
    println!("{out}");

    for proc in &mut procs {
        proc.kill().await;
    }
    drop(queue);
    if let Some(mut b) = bouncer {
        let _ = b.child.kill().await;
    }
    let clean = lost == 0
        && doubled == 0
        && last.stock_mismatches == 0
        && false_counts == 0
        && last.catalog_mismatches == 0
        && charges <= orders.confirmed
        && orders.unresolved == 0
        && webhooks.applied == webhooks.acknowledged;
    match converged_after_s {
        None => bail!(
            "the network did not converge within {} s of the faults stopping",
            a.converge_timeout_s
        ),
        Some(_) if !clean => bail!("the network converged, but not to what was sold and edited"),
        Some(_) => Ok(()),
    }
}

/// The edits, shop sales and API orders, at their rates, for the run's length: units sold per
/// SKU by the shops, edits, shop sales, and the orders' tasks (still retrying, perhaps).
async fn load(
    mock: &MockServer,
    stores: &[String],
    servers: &[String],
    orders: &Arc<Mutex<OrdersSeen>>,
    a: &ChaosArgs,
) -> Result<(
    HashMap<String, i64>,
    u64,
    u64,
    Vec<tokio::task::JoinHandle<()>>,
)> {
    let p = mock.platform();
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
    let snapshot = p.snapshot(PARENT)?;
    let products: Vec<(u64, u64, String)> = snapshot["products"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            Some((
                p["id"].as_u64()?,
                p["variants"][0]["id"].as_u64()?,
                p["variants"][0]["sku"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let skus: Vec<String> = parent_stock(mock)?.into_keys().collect();
    // The last products are the orders API's: their prices stay put.
    let (editable, for_orders) = products.split_at(products.len() - ORDER_PRODUCTS);
    let mut priced = Vec::new();
    for (_, _, sku) in for_orders {
        priced.push((sku.clone(), p.price_cents(PARENT, sku)?));
    }
    let http = reqwest::Client::new();
    let mut sold: HashMap<String, i64> = HashMap::new();
    let (mut edits, mut sales, mut placed) = (0u64, 0u64, 0u64);
    let mut tasks = Vec::new();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while started.elapsed() < Duration::from_secs(a.seconds) {
        tick.tick().await;
        let t = started.elapsed().as_secs_f64();
        while (edits as f64) < a.edits_per_s * t {
            if edits % 2 == 0 {
                let (id, _, _) = &products[rng.random_range(0..products.len())];
                let title = format!("Edition {edits} of {id}");
                p.merchant_edit_product(PARENT, *id, ProductSpec::titled(title))?;
            } else {
                let (_, variant, _) = &editable[rng.random_range(0..editable.len())];
                let price = format!("{}.{:02}", rng.random_range(5..90), edits % 100);
                p.merchant_edit_variant(PARENT, *variant, Some(price), None)?;
            }
            edits += 1;
        }
        while (sales as f64) < a.sales_per_s * t {
            let store = &stores[rng.random_range(0..stores.len())];
            let sku = &skus[rng.random_range(0..skus.len())];
            let quantity = rng.random_range(1..=2);
            let line = OrderLine {
                variant_id: None,
                sku: Some(sku.clone()),
                quantity,
            };
            p.place_order(store, &[line])
                .with_context(|| format!("a sale of {sku} in {store}"))?;
            *sold.entry(sku.clone()).or_default() += quantity;
            sales += 1;
        }
        while (placed as f64) < a.orders_per_s * t {
            let (sku, price) = priced[rng.random_range(0..priced.len())].clone();
            let first = rng.random_range(0..servers.len());
            tasks.push(tokio::spawn(place(
                http.clone(),
                servers.to_vec(),
                first,
                sku,
                price,
                orders.clone(),
            )));
            placed += 1;
        }
        if started.elapsed().as_secs().is_multiple_of(30) && started.elapsed().subsec_millis() < 100
        {
            eprintln!(
                "  {:>3} s: {edits} edits, {sales} shop sales, {placed} API orders",
                started.elapsed().as_secs()
            );
        }
    }
    Ok((sold, edits, sales, tasks))
}

/// One order through the orders API: sent to one server, then again with the same key —
/// to the other server after a failure, to the same after a 409 — until a final answer.
async fn place(
    http: reqwest::Client,
    servers: Vec<String>,
    first: usize,
    sku: String,
    price: i64,
    seen: Arc<Mutex<OrdersSeen>>,
) {
    let key = uuid::Uuid::now_v7().to_string();
    let body = json!({"items": [{"sku": sku, "quantity": 1}], "amount_cents": price,
        "currency": "EUR", "payment_method": "pm_card_visa"});
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut at = first;
    let mut tries = 0u64;
    let outcome = loop {
        if Instant::now() > deadline {
            break None;
        }
        tries += 1;
        let r = http
            .post(format!("{}/api/orders", servers[at]))
            .bearer_auth(TOKEN)
            .header("idempotency-key", &key)
            .timeout(Duration::from_secs(30))
            .json(&body)
            .send()
            .await;
        match r.map(|r| r.status().as_u16()) {
            Ok(200 | 201) => break Some(true),
            Ok(409) => tokio::time::sleep(Duration::from_millis(300)).await,
            // The server or its database is down, or busy: the other one.
            Ok(500..) | Ok(429) | Err(_) => {
                at = (at + 1) % servers.len();
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(_) => break Some(false),
        }
    };
    let mut s = seen.lock().await;
    s.retries += tries - 1;
    match outcome {
        Some(true) => {
            s.confirmed += 1;
            *s.sold.entry(sku).or_default() += 1;
        }
        Some(false) => s.refused += 1,
        None => s.unresolved += 1,
    }
}

/// Kills a worker every `worker_every` and a server every `server_every` (taking turns; a
/// worker is started again at once, a server after `server_down`), restarts PostgreSQL once at `(when, command)`, and starts again any
/// process that ended by itself, until `stop`.
async fn kill_loop(
    mut procs: Vec<Proc>,
    stop: Arc<AtomicBool>,
    worker_every: Duration,
    server_every: Duration,
    server_down: Duration,
    mut restart: Option<(Duration, String)>,
) -> Result<(Vec<Proc>, Kills)> {
    let started = Instant::now();
    let mut kills = Kills::default();
    let (servers, workers): (Vec<usize>, Vec<usize>) =
        (0..procs.len()).partition(|&i| procs[i].url.is_some());
    let (mut next_worker, mut next_server) = (worker_every, server_every);
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = started.elapsed();
        for proc in procs.iter_mut() {
            if proc.died() {
                eprintln!("  {} ended by itself; starting it again", proc.name);
                kills.crashes += 1;
                proc.start().await?;
            }
        }
        if t >= next_worker {
            let i = workers[(kills.workers as usize) % workers.len()];
            procs[i].kill().await;
            procs[i].start().await?;
            kills.workers += 1;
            next_worker += worker_every;
        }
        if t >= next_server {
            let i = servers[(kills.servers as usize) % servers.len()];
            procs[i].kill().await;
            tokio::time::sleep(server_down).await;
            procs[i].start().await?;
            kills.servers += 1;
            next_server += server_every;
        }
        if let Some((when, cmd)) = &restart
            && t >= *when
        {
            eprintln!("  restarting PostgreSQL: {cmd}");
            let out = Command::new("sh").args(["-c", cmd]).output().await?;
            if !out.status.success() {
                bail!(
                    "restarting PostgreSQL failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            kills.postgres_restarts += 1;
            restart = None;
        }
    }
    Ok((procs, kills))
}

/// The shell command restarting the PostgreSQL server of `url`, or None (`off`, or `auto` with
/// no pg_ctlcluster cluster on this machine listening on the URL's port).
fn postgres_restart_command(choice: &str, url: &str) -> Result<Option<String>> {
    match choice {
        "off" => Ok(None),
        "auto" => {
            let u: reqwest::Url = url.parse().context("the database URL")?;
            let port = u.port().unwrap_or(5432).to_string();
            let local = matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "::1"));
            let listed = std::process::Command::new("pg_lsclusters")
                .arg("--no-header")
                .output()
                .ok()
                .filter(|o| o.status.success() && local);
            // Ver Cluster Port Status Owner Data Log
            let found = listed.and_then(|o| {
                String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
                    let cols: Vec<&str> = l.split_whitespace().collect();
                    (cols.len() > 2 && cols[2] == port).then(|| {
                        format!(
                            "pg_ctlcluster --skip-systemctl-redirect {} {} restart -m fast",
                            cols[0], cols[1]
                        )
                    })
                })
            });
            if found.is_none() {
                eprintln!(
                    "  no PostgreSQL restart: no pg_ctlcluster cluster on port {port} here (--postgres-restart CMD to give one)"
                );
            }
            Ok(found)
        }
        cmd => Ok(Some(cmd.to_owned())),
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn succeed(mut cmd: Command) -> Result<()> {
    let out = cmd.stdout(Stdio::null()).output().await?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// No webhook on its way and no sync, webhook or order job waiting or running (false when the
/// database does not answer).
async fn settled(queue: &Queue, mock: &MockServer, stores: &[String]) -> bool {
    let in_flight: u64 = stores
        .iter()
        .map(|s| mock.platform().webhook_counters(s).in_flight)
        .sum();
    if in_flight > 0 {
        return false;
    }
    for q in ["webhooks", "sync", ferry_sync::orders::ORDERS_QUEUE] {
        match queue.stats(q).await {
            Ok(s) if s.ready + s.scheduled + s.running == 0 => {}
            _ => return false,
        }
    }
    true
}

/// Waits until [`settled`] holds for three seconds in a row.
async fn wait_until_settled(
    queue: &Queue,
    mock: &MockServer,
    stores: &[String],
    within: Duration,
) -> Result<()> {
    let deadline = Instant::now() + within;
    let mut calm_since: Option<Instant> = None;
    while Instant::now() < deadline {
        if settled(queue, mock, stores).await {
            let since = *calm_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(3) {
                return Ok(());
            }
        } else {
            calm_since = None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the network did not settle within {} s", within.as_secs())
}

/// Available stock of every parent SKU.
fn parent_stock(mock: &MockServer) -> Result<BTreeMap<String, i64>> {
    let snap = mock.platform().snapshot(PARENT)?;
    let mut out = BTreeMap::new();
    for p in snap["products"].as_array().into_iter().flatten() {
        for v in p["variants"].as_array().into_iter().flatten() {
            if let Some(sku) = v["sku"].as_str() {
                let stock = v["inventory"][0]["available"].as_i64().unwrap_or(0);
                out.insert(sku.to_owned(), stock);
            }
        }
    }
    Ok(out)
}

/// The network against what it should be.
struct Check {
    /// Every difference, in words.
    problems: Vec<String>,
    /// Parent units sold but not taken off (summed over SKUs), and taken off twice.
    units_missing: u64,
    units_extra: u64,
    /// Child variants whose stock differs from the parent's, and parent SKUs whose stock
    /// differs from what was sold.
    stock_mismatches: u64,
    /// Other differences between a child and the parent (titles, prices, missing products).
    catalog_mismatches: u64,
    /// Live products in a child sharing a SKU with another live one.
    duplicate_products: u64,
}

/// Every child against the parent, and the parent's stock against `expected` (initial stock
/// less everything sold); with no `expected`, only the children.
fn check(
    mock: &MockServer,
    stores: &[String],
    initial: &BTreeMap<String, i64>,
    expected: &HashMap<String, i64>,
) -> Result<Check> {
    let p = mock.platform();
    let parent = p.snapshot(PARENT)?;
    let mut c = Check {
        problems: Vec::new(),
        units_missing: 0,
        units_extra: 0,
        stock_mismatches: 0,
        catalog_mismatches: 0,
        duplicate_products: 0,
    };
    if !initial.is_empty() {
        for (sku, have) in parent_stock(mock)? {
            let want = expected.get(&sku).copied().unwrap_or(have);
            if have != want {
                c.stock_mismatches += 1;
                c.problems
                    .push(format!("parent: {sku} stock {have}, sales leave {want}"));
                if have > want {
                    c.units_missing += (have - want) as u64;
                } else {
                    c.units_extra += (want - have) as u64;
                }
            }
        }
    }
    for child in &stores[1..] {
        let snap = p.snapshot(child)?;
        for m in crate::demo::mismatches(&parent, &snap, &Rules::default(), child) {
            if m.contains(" stock ") {
                c.stock_mismatches += 1;
            } else {
                c.catalog_mismatches += 1;
            }
            c.problems.push(m);
        }
        let mut live: HashMap<&str, u64> = HashMap::new();
        for prod in snap["products"].as_array().into_iter().flatten() {
            if prod["status"] == "ARCHIVED" {
                continue;
            }
            for v in prod["variants"].as_array().into_iter().flatten() {
                if let Some(sku) = v["sku"].as_str() {
                    *live.entry(sku).or_default() += 1;
                }
            }
        }
        for (sku, n) in live {
            if n > 1 {
                c.duplicate_products += n - 1;
                c.problems
                    .push(format!("{child}: {n} live products carry {sku}"));
            }
        }
    }
    Ok(c)
}

struct WebhookFigures {
    /// Webhook ids ferry answered with a 2xx (each once, however many copies came).
    acknowledged: u64,
    /// Copies sent, tries again after no 2xx, and deliveries the platform gave up on.
    copies: u64,
    retries: u64,
    abandoned: u64,
    /// Deliveries ferry recorded whose job completed.
    applied: u64,
}

async fn webhook_figures(
    queue: &Queue,
    mock: &MockServer,
    stores: &[String],
) -> Result<WebhookFigures> {
    let (mut acknowledged, mut copies, mut retries, mut abandoned) = (0, 0, 0, 0);
    for s in stores {
        let c = mock.platform().webhook_counters(s);
        acknowledged += c.acknowledged;
        copies += c.attempts - c.retries;
        retries += c.retries;
        abandoned += c.abandoned;
    }
    let db = queue.db();
    let applied: Option<(i64,)> = ferry_db::row!(
        &db,
        (i64,),
        "SELECT COUNT(*) FROM ferry_deliveries d JOIN ferry_jobs j ON CAST(j.id AS TEXT) = d.job_id WHERE j.state = 'completed'"
    )?;
    Ok(WebhookFigures {
        acknowledged,
        copies,
        retries,
        abandoned,
        applied: applied.map_or(0, |(n,)| n as u64),
    })
}
