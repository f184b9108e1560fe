//! `ferry bench reconcile`: a full reconciliation pass of a child against its parent at several
//! catalog sizes, both ways in the same run: paged (every product and its copy read through
//! the GraphQL API) and by bulk export (both catalogs exported as JSONL and streamed). Each
//! pass runs in a process of its own (`ferry sync reconcile --full`), so its peak memory is the
//! pass's alone; the simulated platform is another process (`ferry mock`), with Shopify Plus's
//! rate limits on (`--limits plus`: 1,000 points a second) or lifted (`--limits none`).
//!
//! Before each pass the benchmark plants drift in the child (titles, prices, stock levels, a
//! deleted copy, on products of its choosing); the pass must find exactly those (its report's
//! counts) and, once a worker has run its repairs, every one is checked fixed.

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
    /// The stores' GraphQL limits during the passes: `plus` (a 10,000-point bucket restoring
    /// 1,000 points a second, Shopify Plus) or `none` (lifted: the figure is ferry's own).
    #[arg(long, default_value = "plus")]
    limits: String,
    /// Objects the simulated platform's bulk operations write per second.
    #[arg(long, default_value_t = ferry_mock::DEFAULT_ROWS_PER_S)]
    bulk_rows_per_s: f64,
    /// Operations a bulk pass splits each store's export into (1 to 5), run at once.
    #[arg(long, default_value_t = 5)]
    bulk_parts: usize,
    /// Only this way (`paged` or `bulk`); both by default.
    #[arg(long)]
    only: Option<String>,
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
    http: reqwest::Client,
    /// Access tokens by store.
    tokens: Vec<(String, String)>,
}

impl Mock {
    async fn start(bulk_rows_per_s: f64) -> Result<Mock> {
        let mut mock = tokio::process::Command::new(std::env::current_exe()?);
        mock.args(["mock", "--addr", "127.0.0.1:0", "--stores", "0"])
            .arg("--bulk-rows-per-s")
            .arg(bulk_rows_per_s.to_string())
            .env("FERRY_LOG", "warn");
        let (child, url, mut lines) =
            crate::bench::spawn_listening(&mut mock, "ferry mock").await?;
        // Keep reading so the mock never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Mock {
            child,
            url,
            http: reqwest::Client::new(),
            tokens: Vec::new(),
        })
    }

    fn control(&self, path: &str) -> String {
        format!("{}/control/stores/{path}", self.url)
    }

    fn graphql_url(&self, store: &str) -> String {
        format!("{}/stores/{store}/admin/api/2026-04/graphql.json", self.url)
    }

    async fn limits(&self, store: &str, bucket: f64, restore: f64) -> Result<()> {
        post(
            &self.http,
            &self.control(&format!("{store}/limits")),
            json!({"graphql_bucket": bucket, "graphql_restore_per_s": restore}),
        )
        .await
        .map(|_| ())
    }

    async fn points(&self, store: &str) -> Result<u64> {
        let v: Value = self
            .http
            .get(self.control(&format!("{store}/counters")))
            .send()
            .await?
            .json()
            .await?;
        v["api"]["points_spent"]
            .as_u64()
            .context("the mock's counters have no points_spent")
    }

    async fn gql(&self, store: &str, query: &str, variables: Value) -> Result<Value> {
        let token = self
            .tokens
            .iter()
            .find(|(s, _)| s == store)
            .map(|(_, t)| t.clone())
            .unwrap_or_default();
        let v: Value = self
            .http
            .post(self.graphql_url(store))
            .header("x-shopify-access-token", token)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await?
            .json()
            .await?;
        if v.get("errors").is_some() {
            bail!("{store}: {v}");
        }
        Ok(v["data"].clone())
    }

    /// A variant by SKU: (variant number, its product's number, its item's number, title,
    /// price, available).
    async fn by_sku(&self, store: &str, sku: &str) -> Result<Option<Found>> {
        let d = self
            .gql(
                store,
                "query S($q: String!) { productVariants(first: 2, query: $q) { nodes { id price inventoryQuantity product { id title } inventoryItem { id } } } }",
                json!({"q": format!("sku:\"{sku}\"")}),
            )
            .await?;
        let Some(n) = d["productVariants"]["nodes"].get(0) else {
            return Ok(None);
        };
        let num = |v: &Value| -> u64 {
            v.as_str()
                .and_then(|g| g.rsplit('/').next())
                .and_then(|x| x.parse().ok())
                .unwrap_or(0)
        };
        Ok(Some(Found {
            variant: num(&n["id"]),
            product: num(&n["product"]["id"]),
            item: num(&n["inventoryItem"]["id"]),
            title: n["product"]["title"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            price: n["price"].as_str().unwrap_or_default().to_owned(),
            available: n["inventoryQuantity"].as_i64().unwrap_or(0),
        }))
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Found {
    variant: u64,
    product: u64,
    item: u64,
    title: String,
    price: String,
    available: i64,
}

/// The drift planted before one pass: products by number (1-based position in the catalog).
struct Drift {
    titles: Vec<usize>,
    prices: Vec<usize>,
    stock: Vec<usize>,
    deleted: usize,
}

impl Drift {
    /// Spread over the catalog, different for each round.
    fn for_round(products: usize, round: usize) -> Drift {
        let at = |k: usize| ((k * 7919 + round * 104_729) % products) + 1;
        Drift {
            titles: (0..5).map(at).collect(),
            prices: (5..10).map(at).collect(),
            stock: (10..15).map(at).collect(),
            deleted: at(15),
        }
    }

    fn skus(&self) -> Vec<String> {
        self.titles
            .iter()
            .chain(&self.prices)
            .chain(&self.stock)
            .chain(std::iter::once(&self.deleted))
            .map(|n| format!("SKU-{n:06}-1"))
            .collect()
    }

    /// (products to update, copies to create, stock levels to fix) a pass must find.
    fn expected(&self) -> (i64, i64, i64) {
        let mut updated: Vec<usize> = self.titles.iter().chain(&self.prices).copied().collect();
        updated.sort();
        updated.dedup();
        (updated.len() as i64, 1, self.stock.len() as i64)
    }

    async fn plant(&self, mock: &Mock) -> Result<()> {
        let child = "child-1";
        for n in &self.titles {
            let f = copy(mock, *n).await?;
            post(
                &mock.http,
                &mock.control(&format!("{child}/products/{}", f.product)),
                json!({"title": format!("Drifted {n}")}),
            )
            .await?;
        }
        for n in &self.prices {
            let f = copy(mock, *n).await?;
            post(
                &mock.http,
                &mock.control(&format!("{child}/variants/{}", f.variant)),
                json!({"price": "0.01"}),
            )
            .await?;
        }
        for n in &self.stock {
            let f = copy(mock, *n).await?;
            post(
                &mock.http,
                &mock.control(&format!("{child}/inventory")),
                json!({"inventory_item_id": f.item, "available": f.available + 1000}),
            )
            .await?;
        }
        let f = copy(mock, self.deleted).await?;
        let r = mock
            .http
            .delete(mock.control(&format!("{child}/products/{}", f.product)))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("deleting a copy: {}", r.status());
        }
        Ok(())
    }

    /// Every drifted SKU reads in the child as in the parent again.
    async fn check_fixed(&self, mock: &Mock) -> Result<()> {
        for sku in self.skus() {
            let want = mock.by_sku("parent", &sku).await?.context("parent SKU")?;
            let got = mock
                .by_sku("child-1", &sku)
                .await?
                .with_context(|| format!("{sku} was not copied again"))?;
            if (&got.title, &got.price, got.available) != (&want.title, &want.price, want.available)
            {
                bail!("{sku} not repaired: child {got:?}, parent {want:?}");
            }
        }
        Ok(())
    }
}

/// The child's copy of the parent's product `n`.
async fn copy(mock: &Mock, n: usize) -> Result<Found> {
    mock.by_sku("child-1", &format!("SKU-{n:06}-1"))
        .await?
        .with_context(|| format!("the child has no copy of product {n}"))
}

/// A web tier and worker on the benchmark's database (setting up, then running repairs).
async fn stack(db: &FreshDb, key: &str) -> Result<Stack> {
    let queue = Queue::connect(&db.url).await?;
    let mut cfg = StackConfig::new(Cipher::from_base64(key)?);
    cfg.app.engine.public_url = String::new();
    // The simulated platform answers on loopback over plain http.
    cfg.app.client.outbound = ferry_connect::Outbound::insecure();
    // Setting up is not what is measured: let the links be made 32 at a time.
    cfg.app.engine.store_concurrency = 32;
    cfg.app.engine.bulk.poll = Duration::from_millis(500);
    cfg.worker = WorkerOptions {
        concurrency: 64,
        poll_interval: Duration::from_millis(200),
        ..WorkerOptions::default()
    };
    Ok(Stack::start(queue, cfg).await?)
}

async fn until_quiet(stack: &Stack) -> Result<()> {
    while stack.engine.busy().await? {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// One pass in a process of its own: its report, with its peak memory.
async fn pass(db: &FreshDb, key: &str, bulk: bool, parts: usize) -> Result<Value> {
    let threshold = if bulk { "2000" } else { "18446744073709551615" };
    let out = tokio::process::Command::new(std::env::current_exe()?)
        .env("FERRY_ALLOW_INSECURE_STORE_URLS", "true")
        .env("FERRY_BULK_THRESHOLD_PRODUCTS", threshold)
        .env("FERRY_BULK_POLL_MS", "500")
        .env("FERRY_BULK_PARTS", parts.to_string())
        .args([
            "sync",
            "reconcile",
            "--full",
            "--child",
            "child-1",
            "--database-url",
        ])
        .arg(&db.url)
        .env("FERRY_ENCRYPTION_KEY", key)
        // FERRY_BENCH_LOG sets the pass's log filter to see where time goes.
        .env(
            "FERRY_LOG",
            std::env::var("FERRY_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await?;
    // `output()` captures stderr whatever was set: what the pass logged is shown after it.
    if std::env::var("FERRY_BENCH_LOG").is_ok() {
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
    }
    if !out.status.success() {
        bail!(
            "ferry sync reconcile failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .context("ferry sync reconcile printed no report")
}

async fn one_size(a: &ReconcileArgs, products: usize) -> Result<Value> {
    let mut mock = Mock::start(a.bulk_rows_per_s).await?;
    let stores = mock.control("");
    let stores = stores.trim_end_matches('/');
    let t = Instant::now();
    let parent = post(
        &mock.http,
        stores,
        json!({"name": "parent", "products": products, "variants": 2}),
    )
    .await?;
    let child = post(
        &mock.http,
        stores,
        json!({"name": "child-1", "copy_of": "parent", "tag_copies": "ferry-src-"}),
    )
    .await?;
    for s in ["parent", "child-1"] {
        mock.limits(s, 1e12, 1e12).await?;
    }
    let db = FreshDb::create(a.database_url.as_deref()).await?;
    let key = Cipher::generate_key();
    let setup = stack(&db, &key).await?;
    for (name, info, role) in [
        ("parent", &parent, Role::Parent),
        ("child-1", &child, Role::Child),
    ] {
        let s = |k: &str| info[k].as_str().unwrap_or_default().to_owned();
        mock.tokens.push((name.to_owned(), s("access_token")));
        setup
            .engine
            .add_store(
                name,
                role,
                &mock.graphql_url(name),
                &s("access_token"),
                &s("webhook_secret"),
                &Rules::default(),
            )
            .await?;
        setup.engine.connect_store(name).await?;
    }
    loop {
        let connected = setup.engine.network().store("child-1").await?.state
            == ferry_sync::network::StoreState::Connected;
        if connected && !setup.engine.busy().await? {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    setup.shutdown().await;
    let setup_s = t.elapsed().as_secs_f64();
    println!("{products} products: the network was set up and linked in {setup_s:.1} s");

    let (bucket, restore) = match a.limits.as_str() {
        "plus" => (10_000.0, 1_000.0),
        "none" => (1e12, 1e12),
        other => bail!("--limits is plus or none, not {other:?}"),
    };
    let ways: Vec<bool> = match a.only.as_deref() {
        None => vec![false, true],
        Some("paged") => vec![false],
        Some("bulk") => vec![true],
        Some(other) => bail!("--only is paged or bulk, not {other:?}"),
    };
    let mut out = json!({
        "products": products,
        "limits": a.limits,
        "bulk_rows_per_s": a.bulk_rows_per_s,
        "bulk_parts": a.bulk_parts,
        "setup_s": round2(setup_s),
    });
    for (round, bulk) in ways.into_iter().enumerate() {
        let way = if bulk { "bulk" } else { "paged" };
        let drift = Drift::for_round(products, round);
        drift.plant(&mock).await?;
        for s in ["parent", "child-1"] {
            mock.limits(s, bucket, restore).await?;
        }
        let points = mock.points("parent").await? + mock.points("child-1").await?;
        let report = pass(&db, &key, bulk, a.bulk_parts).await?;
        let points = mock.points("parent").await? + mock.points("child-1").await? - points;
        let elapsed_s = (report["finished_ms"].as_i64().unwrap_or(0)
            - report["started_ms"].as_i64().unwrap_or(0)) as f64
            / 1000.0;
        let checked = report["checked"].as_i64().unwrap_or(0);
        let found = (
            report["updated"].as_i64().unwrap_or(-1),
            report["created"].as_i64().unwrap_or(-1),
            report["stock_fixed"].as_i64().unwrap_or(-1),
        );
        let rss = report["peak_rss_mb"].as_f64().unwrap_or(0.0);
        let mode = report["mode"].as_str().unwrap_or_default().to_owned();
        println!(
            "{products} products, {way}: {checked} checked in {elapsed_s:.1} s ({mode}), peak RSS {rss} MB, {points} API points, found (updated, created, stock) {found:?}"
        );
        if checked as usize != products {
            bail!("{way}: checked {checked} of {products} products");
        }
        if found != drift.expected() {
            bail!(
                "{way}: found {found:?}, planted {:?} (a drift missed or a product touched that did not drift)",
                drift.expected()
            );
        }
        if mode != way {
            bail!("{way} pass read the catalogs as {mode:?}");
        }
        // The repairs are jobs: a worker runs them (limits lifted: they are not measured).
        for s in ["parent", "child-1"] {
            mock.limits(s, 1e12, 1e12).await?;
        }
        let repairs = stack(&db, &key).await?;
        until_quiet(&repairs).await?;
        repairs.shutdown().await;
        drift.check_fixed(&mock).await?;
        println!("{products} products, {way}: every planted drift repaired");
        out[format!("{way}_s")] = json!(round2(elapsed_s));
        out[format!("{way}_peak_rss_mb")] = json!(rss);
        out[format!("{way}_api_points")] = json!(points);
    }
    if let (Some(p), Some(b)) = (out["paged_s"].as_f64(), out["bulk_s"].as_f64()) {
        out["bulk_speedup"] = json!(round2(p / b.max(0.001)));
    }
    out["peak_rss_mb"] = out["bulk_peak_rss_mb"].clone();
    out["api_points"] = json!({"paged": out["paged_api_points"], "bulk": out["bulk_api_points"]});
    let _ = mock.child.kill().await;
    db.drop_db().await;
    println!("{out}");
    Ok(out)
}

pub async fn run(a: ReconcileArgs) -> Result<()> {
    if a.products.is_empty() {
        bail!("--products needs at least one size");
    }
    if !(1..=5).contains(&a.bulk_parts) {
        bail!("--bulk-parts is 1 to 5 (Shopify runs at most 5 bulk queries per shop at once)");
    }
    if a.products.iter().any(|n| *n < 200) {
        bail!("--products sizes are at least 200 (the drift is spread over the catalog)");
    }
    let mut sizes = Vec::new();
    for n in &a.products {
        sizes.push(one_size(&a, *n).await?);
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
            "paged_s": last["paged_s"],
            "bulk_s": last["bulk_s"],
            "bulk_speedup": last["bulk_speedup"],
            "peak_rss_mb": last["peak_rss_mb"],
            "rss_vs_smallest": round2(growth),
            "sizes": sizes,
        })
    );
    Ok(())
}
