//! `ferry bench orders`: orders through the orders API over HTTP on loopback, against a
//! simulated parent and children and the simulated payment provider. Every order reserves,
//! charges under its key and confirms; 5% of requests send an earlier order again (a client
//! retrying). Peer in the same run: the same load straight at the payment provider (one
//! keyed charge per order, nothing reserved or confirmed), the ceiling of any orchestration
//! that charges through it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use ferry_core::Cipher;
use ferry_http::stack::{Stack, StackConfig};
use ferry_mock::MockServer;
use ferry_queue::{Queue, WorkerOptions};
use ferry_sync::Role;
use ferry_sync::orders::{Limits, OrdersOptions};
use rand::{RngExt, SeedableRng};
use serde_json::json;

use crate::bench::FreshDb;

const PARENT: &str = "parent";
const TOKEN: &str = "bench-orders-admin-token-0123456789";

#[derive(clap::Args, Debug)]
pub struct OrdersArgs {
    /// A PostgreSQL server (a fresh database is made on it) or a SQLite file; default a
    /// temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Clients sending orders at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Child stores the sales reach.
    #[arg(long, default_value_t = 2)]
    children: usize,
    #[arg(long, default_value_t = 50)]
    products: usize,
}

pub async fn run(a: OrdersArgs) -> Result<()> {
    let db = FreshDb::create(a.database_url.as_deref()).await?;
    let result = bench(&db.url, &a).await;
    db.drop_db().await;
    result
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Sends orders from `concurrency` clients for `seconds`; (201s, other statuses, latencies).
async fn load(
    url: String,
    skus: Arc<Vec<(String, i64)>>,
    a: &OrdersArgs,
    direct: Option<(String, String)>,
) -> (usize, usize, usize, Vec<f64>) {
    let ok = Arc::new(AtomicUsize::new(0));
    let replays = Arc::new(AtomicUsize::new(0));
    let other = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + Duration::from_secs(a.seconds);
    let http = reqwest::Client::new();
    let mut tasks = Vec::new();
    for c in 0..a.concurrency {
        let (ok, replays, other, http, url, skus, direct) = (
            ok.clone(),
            replays.clone(),
            other.clone(),
            http.clone(),
            url.clone(),
            skus.clone(),
            direct.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(c as u64);
            let mut lat = Vec::new();
            let mut sent: Vec<(String, serde_json::Value)> = Vec::new();
            let mut n = 0;
            while Instant::now() < until {
                let again = !sent.is_empty() && rng.random_range(0..100) < 5;
                let (key, body) = if again {
                    sent[rng.random_range(0..sent.len())].clone()
                } else {
                    n += 1;
                    let (sku, price) = &skus[rng.random_range(0..skus.len())];
                    let body = json!({"items": [{"sku": sku, "quantity": 1}], "amount_cents": price,
                        "currency": "EUR", "payment_method": "pm_card_visa"});
                    (format!("c{c}-{n}"), body)
                };
                let t = Instant::now();
                let r = match &direct {
                    None => {
                        http.post(format!("{url}/api/orders"))
                            .bearer_auth(TOKEN)
                            .header("idempotency-key", &key)
                            .json(&body)
                            .send()
                            .await
                    }
                    Some((payments, token)) => {
                        http.post(format!("{payments}/payment_intents"))
                            .bearer_auth(token)
                            .header("idempotency-key", &key)
                            .json(&json!({"amount": 1999, "currency": "eur", "payment_method": "pm_card_visa", "capture": true}))
                            .send()
                            .await
                    }
                };
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                match r.map(|r| (r.status().as_u16(), r.headers().contains_key("idempotent-replay") || r.headers().contains_key("idempotent-replayed"))) {
                    Ok((200 | 201, true)) => {
                        replays.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((200 | 201, false)) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if !again {
                            sent.push((key, body));
                        }
                    }
                    _ => {
                        other.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        if let Ok(l) = t.await {
            all.extend(l);
        }
    }
    all.sort_by(f64::total_cmp);
    (
        ok.load(Ordering::Relaxed),
        replays.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
        all,
    )
}

async fn bench(url: &str, a: &OrdersArgs) -> Result<()> {
    let mock = crate::simulated::platform(None).await?;
    let p = mock.platform();
    let queue = Queue::connect(url).await?;
    let parent = p.create_store(Some(PARENT))?;
    let payments = format!("{}/stores/{PARENT}/payments/v1", mock.url());
    let mut cfg = StackConfig::new(Cipher::from_base64(&Cipher::generate_key())?);
    cfg.app.engine.public_url = String::new();
    // The simulated platform answers on loopback over plain http.
    cfg.app.client.outbound = ferry_connect::Outbound::insecure();
    cfg.app.admin_tokens = vec![TOKEN.to_owned()];
    cfg.worker = WorkerOptions {
        concurrency: 64,
        poll_interval: Duration::from_millis(100),
        ..WorkerOptions::default()
    };
    cfg.app.orders = OrdersOptions {
        payments_url: payments.clone(),
        payments_token: parent.access_token.clone(),
        limits: Limits {
            create: 1_000_000,
            list: 1_000_000,
            detail: 1_000_000,
        },
        ..OrdersOptions::default()
    };
    let stack = Stack::start(queue, cfg).await?;
    let mut stores = Vec::new();
    for i in 0..=a.children {
        let (name, role) = if i == 0 {
            (PARENT.to_owned(), Role::Parent)
        } else {
            (format!("child-{i}"), Role::Child)
        };
        // Unlimited: the figure is ferry's, not a rate limit's.
        let limits = (1e9, 1e9);
        crate::simulated::add_store(&stack, &mock, &name, role, a.products, limits).await?;
        stores.push(name);
    }
    // Plenty of stock: the figure is the orders', not a sell-out's.
    let mut skus = Vec::new();
    for v in p.variants(PARENT)? {
        if let (Some(sku), Some(item)) = (v["sku"].as_str(), v["inventory_item_id"].as_u64()) {
            p.merchant_set_stock(PARENT, item, None, 1_000_000)?;
            skus.push((sku.to_owned(), p.price_cents(PARENT, sku)?));
        }
    }
    for s in &stores {
        stack.engine.connect_store(s).await?;
    }
    crate::bench_sync::quiet(&stack, &mock, &stores).await?;
    let stock_before: i64 = total_stock(&mock, PARENT)?;
    println!(
        "{} SKUs in a parent and {} children, {} clients for {} s, {}",
        skus.len(),
        a.children,
        a.concurrency,
        a.seconds,
        stack.queue.backend()
    );
    let skus = Arc::new(skus);
    let charged_before = p.payment_intents().len();
    let (ok, replays, other, lat) = load(stack.server.url(), skus.clone(), a, None).await;
    let orders_per_s = ok as f64 / a.seconds as f64;
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    let t = Instant::now();
    crate::bench_sync::quiet(&stack, &mock, &stores).await?;
    let settle = t.elapsed().as_secs_f64();
    let charges = p.payment_intents().len() - charged_before;
    let double_charges = charges.saturating_sub(ok);
    let parent_stock = total_stock(&mock, PARENT)?;
    let moved = stock_before - parent_stock;
    let mut children_exact = true;
    for c in &stores[1..] {
        children_exact &= total_stock(&mock, c)? == parent_stock;
    }
    println!(
        "ferry: {ok} orders confirmed ({orders_per_s:.0}/s), p50 {p50:.1} ms, p99 {p99:.1} ms; \
         {replays} retries answered from the store, {other} other answers; {charges} charges; \
         parent stock moved by {moved}; every store settled {settle:.1} s later"
    );
    if moved != ok as i64 {
        bail!("the parent's stock moved by {moved} for {ok} orders");
    }
    let (peer_ok, _, _, peer_lat) = load(
        stack.server.url(),
        skus,
        a,
        Some((payments, parent.access_token.clone())),
    )
    .await;
    let peer_per_s = peer_ok as f64 / a.seconds as f64;
    println!(
        "peer (keyed charges straight at the provider, nothing reserved or confirmed): \
         {peer_per_s:.0}/s, p99 {:.1} ms",
        percentile(&peer_lat, 0.99)
    );
    println!(
        "{}",
        json!({
            "bench": "orders",
            "backend": stack.queue.backend(),
            "concurrency": a.concurrency,
            "seconds": a.seconds,
            "orders": ok,
            "orders_per_s": (orders_per_s * 10.0).round() / 10.0,
            "p50_ms": (p50 * 100.0).round() / 100.0,
            "p99_ms": (p99 * 100.0).round() / 100.0,
            "replays": replays,
            "other_answers": other,
            "double_charges": double_charges,
            "stock_moved": moved,
            "children_match_parent": children_exact,
            "settle_s": (settle * 10.0).round() / 10.0,
            "peer_charges_per_s": (peer_per_s * 10.0).round() / 10.0,
            "peer_p99_ms": (percentile(&peer_lat, 0.99) * 100.0).round() / 100.0,
        })
    );
    Ok(())
}

/// The store's available stock over every variant (first location).
fn total_stock(mock: &MockServer, store: &str) -> Result<i64> {
    let snap = mock.platform().snapshot(store)?;
    Ok(snap["products"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["variants"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v["inventory"][0]["available"].as_i64())
        .sum())
}
