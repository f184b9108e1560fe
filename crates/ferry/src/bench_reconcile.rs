//! `ferry bench reconcile`: a full reconciliation pass of a child that is in line with its
//! parent, at several catalog sizes, in a process of its own (`ferry sync reconcile --full`),
//! so its peak memory is the pass's alone. The simulated platform runs as another process
//! (`ferry mock`) with its rate limits lifted: the figure is ferry's, not the API's. Memory
//! must not grow with the catalog: the pass holds one page at a time.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferry_core::Cipher;
use ferry_http::stack::{Stack, StackConfig};
use ferry_queue::{Queue, WorkerOptions};
use ferry_sync::{Role, Rules};
use serde_json::{Value, json};

use crate::bench::{FreshDb, round2};

#[derive(clap::Args, Debug)]
pub struct ReconcileArgs {
    #[arg(long)]
    database_url: Option<String>,
    /// Catalog sizes, comma-separated (products of 2 variants); the last is the headline.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    products: Vec<usize>,
}

async fn post(http: &reqwest::Client, url: &str, body: Value) -> Result<Value> {
    let r = http.post(url).json(&body).send().await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{url}: {status} {v}");
    }
    Ok(v)
}

struct Mock {
    child: tokio::process::Child,
    url: String,
}

async fn start_mock() -> Result<Mock> {
    let mut mock = tokio::process::Command::new(std::env::current_exe()?);
    mock.args(["mock", "--addr", "127.0.0.1:0", "--stores", "0"])
        .env("FERRY_LOG", "warn");
    let (child, url, mut lines) = crate::bench::spawn_listening(&mut mock, "ferry mock").await?;
    // Keep reading so the mock never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Mock { child, url })
}

async fn one_size(base_db: Option<&str>, products: usize) -> Result<Value> {
    let mut mock = start_mock().await?;
    let http = reqwest::Client::new();
    let stores = format!("{}/control/stores", mock.url);
    let t = Instant::now();
    let parent = post(
        &http,
        &stores,
        json!({"name": "parent", "products": products, "variants": 2}),
    )
    .await?;
    let child = post(
        &http,
        &stores,
        json!({"name": "child-1", "copy_of": "parent", "tag_copies": "ferry-src-"}),
    )
    .await?;
    for s in ["parent", "child-1"] {
        post(
            &http,
            &format!("{stores}/{s}/limits"),
            json!({"graphql_bucket": 1e12, "graphql_restore_per_s": 1e12}),
        )
        .await?;
    }
    let db = FreshDb::create(base_db).await?;
    let key = Cipher::generate_key();
    let queue = Queue::connect(&db.url).await?;
    let mut cfg = StackConfig::new(Cipher::from_base64(&key)?);
    cfg.app.engine.public_url = String::new();
    // The simulated platform answers on loopback over plain http.
    cfg.app.client.outbound = ferry_connect::Outbound::insecure();
    // Setting up is not what is measured: let the links be made 32 at a time.
    cfg.app.engine.store_concurrency = 32;
    cfg.worker = WorkerOptions {
        concurrency: 64,
        poll_interval: Duration::from_millis(200),
        ..WorkerOptions::default()
    };
    let stack = Stack::start(queue, cfg).await?;
    for (name, info, role) in [
        ("parent", &parent, Role::Parent),
        ("child-1", &child, Role::Child),
    ] {
        let s = |k: &str| info[k].as_str().unwrap_or_default().to_owned();
        stack
            .engine
            .add_store(
                name,
                role,
                &format!("{}/stores/{name}/admin/api/2026-04/graphql.json", mock.url),
                &s("access_token"),
                &s("webhook_secret"),
                &Rules::default(),
            )
            .await?;
        stack.engine.connect_store(name).await?;
    }
    loop {
        let connected = stack.engine.network().store("child-1").await?.state
            == ferry_sync::network::StoreState::Connected;
        if connected && !stack.engine.busy().await? {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stack.shutdown().await;
    let setup_s = t.elapsed().as_secs_f64();
    println!("{products} products: the network was set up and linked in {setup_s:.1} s");

    let out = tokio::process::Command::new(std::env::current_exe()?)
        .env("FERRY_ALLOW_INSECURE_STORE_URLS", "true")
        .args([
            "sync",
            "reconcile",
            "--full",
            "--child",
            "child-1",
            "--database-url",
        ])
        .arg(&db.url)
        .env("FERRY_ENCRYPTION_KEY", &key)
        // FERRY_BENCH_LOG sets the pass's log filter (its statements, say) to see where time goes.
        .env(
            "FERRY_LOG",
            std::env::var("FERRY_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(if std::env::var("FERRY_BENCH_LOG").is_ok() {
            Stdio::inherit()
        } else {
            Stdio::piped()
        })
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "ferry sync reconcile failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .context("ferry sync reconcile printed no report")?;
    let _ = mock.child.kill().await;
    db.drop_db().await;
    let elapsed_ms =
        report["finished_ms"].as_i64().unwrap_or(0) - report["started_ms"].as_i64().unwrap_or(0);
    let checked = report["checked"].as_i64().unwrap_or(0);
    let per_s = checked as f64 / (elapsed_ms.max(1) as f64 / 1000.0);
    let repaired = report["created"].as_i64().unwrap_or(0)
        + report["updated"].as_i64().unwrap_or(0)
        + report["stock_fixed"].as_i64().unwrap_or(0);
    let rss = report["peak_rss_mb"].as_f64().unwrap_or(0.0);
    println!(
        "{products} products: {checked} checked in {:.1} s, {per_s:.0} products/s, peak RSS {rss} MB, {repaired} repairs",
        elapsed_ms as f64 / 1000.0
    );
    if checked as usize != products {
        bail!("checked {checked} of {products} products");
    }
    Ok(json!({
        "products": products,
        "products_per_s": round2(per_s),
        "peak_rss_mb": rss,
        "repairs": repaired,
        "setup_s": round2(setup_s),
    }))
}

pub async fn run(a: ReconcileArgs) -> Result<()> {
    if a.products.is_empty() {
        bail!("--products needs at least one size");
    }
    let mut sizes = Vec::new();
    for n in &a.products {
        sizes.push(one_size(a.database_url.as_deref(), *n).await?);
    }
    let first = sizes.first().cloned().unwrap_or_default();
    let last = sizes.last().cloned().unwrap_or_default();
    let growth = last["peak_rss_mb"].as_f64().unwrap_or(0.0)
        / first["peak_rss_mb"].as_f64().unwrap_or(1.0).max(0.1);
    println!(
        "{}",
        json!({
            "bench": "reconcile",
            "products": last["products"],
            "products_per_s": last["products_per_s"],
            "peak_rss_mb": last["peak_rss_mb"],
            "rss_vs_smallest": round2(growth),
            "sizes": sizes,
        })
    );
    Ok(())
}
