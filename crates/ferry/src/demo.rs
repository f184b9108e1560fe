//! `ferry demo`: the whole product in one process on an embedded SQLite file. The simulated
//! platform with a parent and three children, the web tier and a worker; the network is
//! connected, a scenario is played (catalog edits, a burst of sales, a price rule, a deleted
//! product, a stretch of API faults and duplicate webhooks), then every child is checked
//! against the parent and a summary printed. Exit status 1 if anything does not match.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ferry_core::Cipher;
use ferry_http::stack::{Stack, StackConfig};
use ferry_mock::{Faults, FileSpec, MockServer, OrderLine, Platform, ProductSpec};
use ferry_queue::{Queue, QueueOptions, WorkerOptions};
use ferry_sync::{Field, Role, Rules};
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Products in the parent's catalog (2 variants each).
    #[arg(long, default_value_t = 300)]
    products: usize,
    /// Child stores.
    #[arg(long, default_value_t = 3)]
    children: usize,
    /// How long the stores' tokens live: the stores are connected through an app on the
    /// client credentials grant, so the run shows ferry renewing them while it syncs.
    #[arg(long, default_value_t = 20)]
    token_ttl_s: u64,
    /// The database (default: a new SQLite file in a temporary directory).
    #[arg(long)]
    database_url: Option<String>,
    /// Seeds the catalogs, the scenario and the faults.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Keep the platform, the API and the worker up after the check (until Ctrl-C).
    #[arg(long)]
    keep_running: bool,
    /// Where the API listens.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
}

const PARENT: &str = "parent";
const ADMIN_TOKEN_LEN: usize = 32;

struct Demo {
    mock: MockServer,
    /// The app the stores are reached through.
    app: ferry_mock::AppInfo,
    stack: Stack,
    children: Vec<String>,
    started: Instant,
    rng: rand::rngs::StdRng,
}

fn status_line(
    mock: &Platform,
    stores: &[String],
    counts: &[(String, String, i64)],
    stats: &[ferry_queue::QueueStats],
) -> String {
    let ready: i64 = stats.iter().map(|s| s.ready + s.scheduled).sum();
    let running: i64 = stats.iter().map(|s| s.running).sum();
    let writes: Vec<String> = stores
        .iter()
        .map(|s| {
            let n: i64 = counts.iter().filter(|c| &c.0 == s).map(|c| c.2).sum();
            let pts = mock.counters(s).map(|c| c.points_spent).unwrap_or(0);
            format!("{s} {n}w/{pts}pt")
        })
        .collect();
    let faults: u64 = stores
        .iter()
        .map(|s| mock.faults_injected(s).unwrap_or(0))
        .sum();
    format!(
        "jobs waiting {ready:>4} running {running:>3} · writes/API points: {} · faults {faults}",
        writes.join(", ")
    )
}

impl Demo {
    fn stores(&self) -> Vec<String> {
        std::iter::once(PARENT.to_owned())
            .chain(self.children.iter().cloned())
            .collect()
    }

    fn p(&self) -> &Arc<Platform> {
        self.mock.platform()
    }

    /// Waits until no webhook is on its way and no job waits or runs (for a moment), showing
    /// what is happening meanwhile.
    async fn settle(&self, what: &str) -> Result<()> {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        let started = Instant::now();
        let mut calm = 0;
        let mut last_print = Instant::now();
        loop {
            let idle = crate::simulated::idle(&self.stack, &self.mock, &self.stores()).await?;
            calm = if idle { calm + 1 } else { 0 };
            if calm >= 10 {
                break;
            }
            let counts = self.stack.engine.network().write_counts().await?;
            let mut stats = Vec::new();
            for q in ferry_sync::Engine::queues() {
                stats.push(self.stack.queue.stats(q).await?);
            }
            let line = status_line(self.p(), &self.stores(), &counts, &stats);
            match &bar {
                Some(b) => b.set_message(format!("{what}: {line}")),
                None if last_print.elapsed() > Duration::from_secs(2) => {
                    println!("  … {line}");
                    last_print = Instant::now();
                }
                None => {}
            }
            if started.elapsed() > Duration::from_secs(600) {
                bail!("{what}: the network did not settle within 10 minutes");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        println!(
            "  ✓ {what} settled in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    fn product_ids(&self, store: &str) -> Result<Vec<u64>> {
        let snap = self.p().snapshot(store)?;
        Ok(snap["products"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["status"] != "ARCHIVED")
                    .filter_map(|p| p["id"].as_u64())
                    .collect()
            })
            .unwrap_or_default())
    }

    fn pick<T: Clone>(&mut self, v: &[T]) -> Option<T> {
        if v.is_empty() {
            return None;
        }
        Some(v[self.rng.random_range(0..v.len())].clone())
    }

    /// A burst of orders in several stores at once (lines drawn from the parent's SKUs).
    async fn sales(&mut self, orders: usize, stores: &[String]) -> Result<usize> {
        let skus: Vec<String> = skus_in_stock(&self.p().snapshot(PARENT)?);
        let mut placed = 0;
        for _ in 0..orders {
            let (Some(store), Some(sku)) = (self.pick(stores), self.pick(&skus)) else {
                break;
            };
            let q = self.rng.random_range(1..=2);
            let line = OrderLine {
                variant_id: None,
                sku: Some(sku),
                quantity: q,
            };
            // Refused when the store is short (it can be, for a moment): a shopper's bad luck.
            if self.p().place_order(&store, &[line]).is_ok() {
                placed += 1;
            }
        }
        Ok(placed)
    }

    /// A new first image on `n` products of the parent (their others stay, after it).
    async fn new_images(&mut self, n: usize) -> Result<()> {
        let snap = self.p().snapshot(PARENT)?;
        let products: Vec<Value> = snap["products"].as_array().cloned().unwrap_or_default();
        for i in 0..n {
            let Some(p) = self.pick(&products) else {
                continue;
            };
            let Some(id) = p["id"].as_u64() else {
                continue;
            };
            let mut files = vec![FileSpec {
                source: Some(format!("https://images.example.com/spring/{id}-{i}.jpg")),
                alt: Some(format!("Spring look {i}")),
                ..FileSpec::default()
            }];
            files.extend(
                p["images"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|f| FileSpec {
                        id: f["id"].as_u64(),
                        ..FileSpec::default()
                    }),
            );
            self.p().merchant_edit_product(
                PARENT,
                id,
                ProductSpec {
                    files: Some(files),
                    ..ProductSpec::default()
                },
            )?;
        }
        Ok(())
    }

    async fn edit_titles(&mut self, n: usize, tag: &str) -> Result<()> {
        let ids = self.product_ids(PARENT)?;
        for i in 0..n {
            if let Some(id) = self.pick(&ids) {
                self.p().merchant_edit_product(
                    PARENT,
                    id,
                    ProductSpec::titled(format!("{tag} edition #{i} of {id}")),
                )?;
            }
        }
        Ok(())
    }
}

fn skus_in_stock(snapshot: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for p in snapshot["products"].as_array().into_iter().flatten() {
        if p["status"] == "ARCHIVED" {
            continue;
        }
        for v in p["variants"].as_array().into_iter().flatten() {
            let stocked = v["inventory"]
                .as_array()
                .and_then(|l| l.first())
                .and_then(|l| l["available"].as_i64())
                .unwrap_or(0);
            if let (Some(sku), true) = (v["sku"].as_str(), stocked > 5) {
                out.push(sku.to_owned());
            }
        }
    }
    out
}

/// A product's images as (alt, the parent image it is): in the parent its own id, in a child
/// the id in the name ferry uploaded it under (`ferry-{id}-…`), 0 for an image of its own.
fn image_list(p: &Value, parent: bool) -> Vec<(String, u64)> {
    p["images"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let alt = i["alt"].as_str().unwrap_or_default().to_owned();
            let of = if parent {
                i["id"].as_u64()
            } else {
                i["filename"]
                    .as_str()
                    .and_then(|f| f.strip_prefix("ferry-"))
                    .and_then(|f| f.split('-').next())
                    .and_then(|n| n.parse().ok())
            };
            (alt, of.unwrap_or(0))
        })
        .collect()
}

type Row = (String, String, i64, String, Vec<(String, u64)>);

/// (title, price, available, status, images) per SKU.
fn by_sku(snapshot: &Value, parent: bool) -> BTreeMap<String, Row> {
    let mut out = BTreeMap::new();
    for p in snapshot["products"].as_array().into_iter().flatten() {
        for v in p["variants"].as_array().into_iter().flatten() {
            let Some(sku) = v["sku"].as_str() else {
                continue;
            };
            let available = v["inventory"]
                .as_array()
                .and_then(|l| l.first())
                .and_then(|l| l["available"].as_i64())
                .unwrap_or(0);
            let s = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
            let entry = (
                s("title"),
                v["price"].as_str().unwrap_or_default().to_owned(),
                available,
                s("status"),
                image_list(p, parent),
            );
            // A copy ferry archived may share a SKU with a live one: the live one counts.
            let keep = out.get(sku).is_none_or(|e: &Row| e.3 == "ARCHIVED");
            if keep {
                out.insert(sku.to_owned(), entry);
            }
        }
    }
    out
}

/// Every difference between a child and the parent, in words.
pub(crate) fn mismatches(parent: &Value, child: &Value, rules: &Rules, name: &str) -> Vec<String> {
    let parent = by_sku(parent, true);
    let child = by_sku(child, false);
    let mut out = Vec::new();
    for (sku, (title, price, stock, status, images)) in &parent {
        let Some(c) = child.get(sku) else {
            out.push(format!("{name}: {sku} is missing"));
            continue;
        };
        if &c.0 != title {
            out.push(format!("{name}: {sku} title {:?}, parent {title:?}", c.0));
        }
        let want = rules.price(price);
        if c.1 != want {
            out.push(format!("{name}: {sku} price {}, want {want}", c.1));
        }
        if &c.2 != stock {
            out.push(format!("{name}: {sku} stock {}, parent {stock}", c.2));
        }
        if &c.3 != status {
            out.push(format!("{name}: {sku} status {}, parent {status}", c.3));
        }
        if rules.takes(Field::Images) && &c.4 != images {
            out.push(format!("{name}: {sku} images {:?}, parent {images:?}", c.4));
        }
    }
    for (sku, c) in &child {
        if !parent.contains_key(sku) && c.3 != "ARCHIVED" {
            out.push(format!("{name}: {sku} is not in the parent but is {}", c.3));
        }
    }
    out
}

pub async fn run(args: DemoArgs) -> Result<()> {
    let dir = tempfile::tempdir().context("a temporary directory")?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite:{}", dir.path().join("ferry-demo.db").display()));
    println!(
        "ferry demo: {} products × 2 variants, a parent and {} children, database {}",
        args.products,
        args.children,
        ferry_queue::redact_url(&url)
    );
    let started = Instant::now();
    let mock = crate::simulated::platform(Some(args.seed))
        .await
        .context("starting the simulated platform")?;
    let queue = Queue::connect_with(&url, QueueOptions::default()).await?;
    let mut cfg = StackConfig::new(Cipher::from_base64(&Cipher::generate_key())?);
    cfg.listen = args.listen;
    cfg.app.engine.public_url = String::new();
    // The simulated platform answers on loopback over plain http.
    cfg.app.client.outbound = ferry_connect::Outbound::insecure();
    // Shop domains lead to the simulated platform.
    cfg.app.engine.shop_url = format!("{}/stores/{{shop}}", mock.url());
    let admin_token: String = {
        let mut r = rand::rngs::StdRng::seed_from_u64(args.seed ^ 0x5eed);
        (0..ADMIN_TOKEN_LEN)
            .map(|_| char::from(b'a' + r.random_range(0..26u8)))
            .collect()
    };
    cfg.app.admin_tokens = vec![admin_token.clone()];
    cfg.worker = WorkerOptions {
        concurrency: 32,
        poll_interval: Duration::from_millis(100),
        ..WorkerOptions::default()
    };
    let stack = Stack::start(queue, cfg).await?;
    // The stores' organization's app, as a merchant makes it in the Dev Dashboard since 2026.
    let scopes = ferry_sync::credentials::NEEDED_SCOPES;
    let app = mock
        .platform()
        .create_app("ferry", ferry_mock::DEFAULT_ORGANIZATION, &scopes);
    mock.platform()
        .set_token_ttl(Some(Duration::from_secs(args.token_ttl_s.max(2))));
    stack
        .engine
        .network()
        .put_app(
            "ferry",
            &app.client_id,
            &app.client_secret,
            &scopes.join(","),
        )
        .await?;
    let mut children = Vec::new();
    for i in 0..=args.children {
        let (name, role, products) = if i == 0 {
            (PARENT.to_owned(), Role::Parent, args.products)
        } else {
            // Children already carry most of the catalog (linked by SKU); the rest is copied.
            (
                format!("child-{i}"),
                Role::Child,
                args.products * (10 - i.min(5)) / 10,
            )
        };
        let limits = crate::simulated::PLUS;
        crate::simulated::add_app_store(&stack, &mock, &name, role, products, limits, "ferry")
            .await?;
        if role == Role::Child {
            children.push(name);
        }
    }
    let mut demo = Demo {
        mock,
        app,
        stack,
        children,
        started,
        rng: rand::rngs::StdRng::seed_from_u64(args.seed),
    };
    println!(
        "\n1. Connecting the network (webhooks subscribed, children linked by SKU, missing products copied, stock aligned to the parent)"
    );
    demo.stack.engine.connect_store(PARENT).await?;
    for c in demo.children.clone() {
        demo.stack.engine.connect_store(&c).await?;
    }
    demo.settle("connect").await?;
    for c in &demo.children {
        let counts = demo.stack.engine.network().write_counts().await?;
        let of = |a: &str| {
            counts
                .iter()
                .find(|x| &x.0 == c && x.1 == a)
                .map(|x| x.2)
                .unwrap_or(0)
        };
        println!(
            "  {c}: {} copied, {} updated, {} stock levels aligned",
            of("create"),
            of("update"),
            of("set_stock")
        );
    }

    println!("\n2. Catalog edits in the parent: 10 titles, 5 prices, 3 new images");
    demo.edit_titles(10, "Spring").await?;
    demo.new_images(3).await?;
    let snap = demo.p().snapshot(PARENT)?;
    let variants: Vec<u64> = snap["products"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["variants"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v["id"].as_u64())
        .collect();
    for _ in 0..5 {
        if let Some(v) = demo.pick(&variants) {
            let price = format!(
                "{}.{:02}",
                demo.rng.random_range(5..80),
                demo.rng.random_range(0..100)
            );
            demo.p()
                .merchant_edit_variant(PARENT, v, Some(price), None)?;
        }
    }
    demo.settle("catalog edits").await?;

    println!(
        "\n3. A burst of sales in every store at once (moved as deltas with idempotency keys)"
    );
    let all = demo.stores();
    let placed = demo.sales(40, &all).await?;
    println!("  {placed} orders placed");
    demo.settle("sales").await?;

    let rule_child = demo.children[0].clone();
    let rule = Rules::marked_up(15.0, ".99");
    println!(
        "\n4. A price rule on {rule_child}: +15%, ending in .99 (applied by a full reconciliation)"
    );
    demo.stack
        .engine
        .network()
        .set_rules(&rule_child, &rule)
        .await?;
    demo.stack
        .engine
        .start_reconcile(Some(&rule_child), true)
        .await?;
    demo.settle("price rule").await?;

    let doomed = demo.product_ids(PARENT)?.first().copied();
    if let Some(id) = doomed {
        println!("\n5. Product {id} deleted in the parent (its copies are archived)");
        demo.p().merchant_delete_product(PARENT, id)?;
        demo.settle("deletion").await?;
    }

    println!(
        "\n6. A stretch of trouble: 5xx and 429 from every child's API, writes applied then refused, duplicate and late webhooks"
    );
    let trouble = Faults {
        error_5xx: 0.15,
        throttle_429: 0.1,
        retry_after_s: 1,
        applied_then_5xx: 0.05,
        webhook_duplicate: 0.3,
        webhook_hold: 0.2,
        webhook_hold_ms: 1_500,
        ..Faults::default()
    };
    for s in demo.stores() {
        let mut f = trouble.clone();
        if s == PARENT {
            // The parent's API stays up; its webhooks misbehave like everyone's.
            f.error_5xx = 0.0;
            f.throttle_429 = 0.0;
            f.applied_then_5xx = 0.0;
        }
        demo.p().set_faults(&s, f)?;
    }
    demo.edit_titles(10, "Summer").await?;
    let placed = demo.sales(40, &all).await?;
    println!("  10 edits and {placed} orders under faults");
    demo.settle("trouble").await?;
    for s in demo.stores() {
        demo.p().set_faults(&s, Faults::default())?;
    }

    println!("\n7. Checking every child against the parent");
    demo.stack.engine.start_reconcile(None, true).await?;
    demo.settle("final reconciliation").await?;
    let parent_snap = demo.p().snapshot(PARENT)?;
    let mut problems = Vec::new();
    for c in &demo.children {
        let rules = demo.stack.engine.network().store(c).await?.rules;
        problems.extend(mismatches(&parent_snap, &demo.p().snapshot(c)?, &rules, c));
    }
    let runs = demo.stack.engine.runs(100).await?;
    let repaired: i64 = runs
        .iter()
        .take(demo.children.len())
        .map(|r| r.created + r.updated + r.stock_fixed)
        .sum();
    let dead = demo
        .stack
        .queue
        .list(&ferry_queue::JobFilter::in_state(
            ferry_queue::JobState::Dead,
            100,
        ))
        .await?;
    let counts = demo.stack.engine.network().write_counts().await?;
    println!(
        "\nSummary after {:.1} s",
        demo.started.elapsed().as_secs_f64()
    );
    println!(
        "  {:<10} {:>7} {:>7} {:>7} {:>7} {:>9} {:>9} {:>7} {:>9}",
        "store", "creates", "updates", "adjusts", "sets", "archives", "API pts", "429s", "faults"
    );
    for s in demo.stores() {
        let of = |a: &str| {
            counts
                .iter()
                .find(|x| x.0 == s && x.1 == a)
                .map(|x| x.2)
                .unwrap_or(0)
        };
        let c = demo.p().counters(&s)?;
        println!(
            "  {:<10} {:>7} {:>7} {:>7} {:>7} {:>9} {:>9} {:>7} {:>9}",
            s,
            of("create"),
            of("update"),
            of("adjust_stock"),
            of("set_stock"),
            of("archive"),
            c.points_spent,
            c.http_429 + c.throttled,
            c.faults_injected
        );
    }
    let w: Vec<ferry_mock::WebhookCounters> = demo
        .stores()
        .iter()
        .map(|s| demo.p().webhook_counters(s))
        .collect();
    println!(
        "  webhooks: {} delivered, {} sent twice, {} held back, {} retried; orders: {}",
        w.iter().map(|c| c.delivered).sum::<u64>(),
        w.iter().map(|c| c.duplicated).sum::<u64>(),
        w.iter().map(|c| c.held).sum::<u64>(),
        w.iter().map(|c| c.retries).sum::<u64>(),
        demo.stores()
            .iter()
            .map(|s| demo
                .p()
                .snapshot(s)
                .map(|v| v["orders"].as_array().map_or(0, Vec::len))
                .unwrap_or(0))
            .sum::<usize>()
    );
    println!(
        "  final reconciliation repaired {repaired} things; dead jobs: {}",
        dead.len()
    );
    let tokens = demo.p().app_counters(&demo.app.client_id);
    println!(
        "  tokens: {} obtained by the client credentials grant ({} s each, renewed before they expired); {} calls met an expired token",
        tokens.client_credentials, args.token_ttl_s, tokens.expired_calls
    );
    let verdict = json!({
        "stores": demo.stores().len(),
        "products": args.products,
        "mismatches": problems.len(),
        "dead_jobs": dead.len(),
        "token_grants": tokens.client_credentials,
        "expired_token_calls": tokens.expired_calls,
        "elapsed_s": demo.started.elapsed().as_secs_f64(),
    });
    if problems.is_empty() {
        println!(
            "\n✓ every child matches the parent: catalog, prices (with rules) and stock, exactly"
        );
    } else {
        println!("\n✗ {} differences:", problems.len());
        for m in problems.iter().take(20) {
            println!("  {m}");
        }
    }
    println!("{verdict}");
    if args.keep_running {
        println!(
            "\nStill running (Ctrl-C stops):\n  dashboard {}/ui  (sign in with {admin_token})\n  API       {}  (Authorization: Bearer {admin_token})\n  platform  {}  (GET /control/stores/parent)",
            demo.stack.server.url(),
            demo.stack.server.url(),
            demo.mock.url()
        );
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(crate::worker::signal_on(stop.clone()));
        stop.cancelled().await;
    }
    demo.stack.shutdown().await;
    if !problems.is_empty() {
        bail!(
            "{} differences between the children and the parent",
            problems.len()
        );
    }
    Ok(())
}
