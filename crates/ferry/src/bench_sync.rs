//! `ferry bench sync`: how long a parent edit takes to reach every child. A simulated parent
//! and children (each API with `--api-latency-ms` on every call), the web tier and a worker in
//! this process, connected; then edits to parent products at a steady rate, each timed from
//! the edit to the audit entry of the last child's write. The peer, in the same run, is the
//! same engine without webhooks: incremental reconciliation passes back to back, which is how
//! sync apps that poll work.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use ferry_core::Cipher;
use ferry_http::stack::{Stack, StackConfig};
use ferry_mock::{Faults, MockServer, ProductSpec};
use ferry_queue::{Queue, WorkerOptions};
use ferry_sync::Role;
use serde_json::json;

use crate::bench::{FreshDb, percentile, round2};

#[derive(clap::Args, Debug)]
pub struct SyncArgs {
    #[arg(long)]
    database_url: Option<String>,
    #[arg(long, default_value_t = 10)]
    children: usize,
    /// Products in every store (2 variants each; the children carry the same SKUs).
    #[arg(long, default_value_t = 1_000)]
    products: usize,
    /// Added to every API call of every store.
    #[arg(long, default_value_t = 20)]
    api_latency_ms: u64,
    /// Edits timed.
    #[arg(long, default_value_t = 60)]
    edits: usize,
    /// Edits per second.
    #[arg(long, default_value_t = 4.0)]
    rate: f64,
    /// Skip the polling peer.
    #[arg(long)]
    no_peer: bool,
}

const PARENT: &str = "parent";

/// Waits until no webhook is on its way and no sync job waits or runs, ten checks in a row.
pub(crate) async fn quiet(stack: &Stack, mock: &MockServer, stores: &[String]) -> Result<()> {
    let started = Instant::now();
    let mut calm = 0;
    while calm < 10 {
        calm = if crate::simulated::idle(stack, mock, stores).await? {
            calm + 1
        } else {
            0
        };
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("the network did not settle within 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Edits parent products at `rate` per second; (title, edit time ms) of each.
async fn edit(
    mock: &MockServer,
    queue: &Queue,
    ids: &[u64],
    n: usize,
    rate: f64,
    tag: &str,
) -> Result<Vec<(String, i64)>> {
    let mut out = Vec::with_capacity(n);
    let gap = Duration::from_secs_f64(1.0 / rate.max(0.01));
    let start = tokio::time::Instant::now();
    for i in 0..n {
        tokio::time::sleep_until(start + gap * i as u32).await;
        let id = ids[i % ids.len()];
        let title = format!("{tag} {i} of {id}");
        let at = queue.now_ms();
        mock.platform()
            .merchant_edit_product(PARENT, id, ProductSpec::titled(title.clone()))?;
        out.push((title, at));
    }
    Ok(out)
}

/// Latency of each edit to its last child, from the audit log (written after each child's
/// write returned).
async fn latencies(
    stack: &Stack,
    edits: &[(String, i64)],
    children: usize,
    since: &str,
) -> Result<Vec<f64>> {
    let mut last: HashMap<&str, (usize, i64)> = HashMap::new();
    let titles: HashMap<&str, i64> = edits.iter().map(|(t, at)| (t.as_str(), *at)).collect();
    let mut after = since.to_owned();
    loop {
        let page = stack.engine.network().audit_log(None, &after, 1000).await?;
        let Some(end) = page.last() else { break };
        after = end.id.clone();
        for e in &page {
            if e.action != "update" && e.action != "create" {
                continue;
            }
            let Some(t) = e.fields["title"][1].as_str() else {
                continue;
            };
            if let Some((key, _)) = titles.get_key_value(t) {
                let entry = last.entry(key).or_insert((0, 0));
                entry.0 += 1;
                entry.1 = entry.1.max(e.at_ms);
            }
        }
    }
    let mut lat = Vec::with_capacity(edits.len());
    for (t, at) in edits {
        match last.get(t.as_str()) {
            Some((n, done)) if *n >= children => lat.push((done - at) as f64),
            // A later edit of the same product overtook it (coalesced into one write): the
            // children skipped straight to the newer title, which is correct and not timed.
            _ => {}
        }
    }
    lat.sort_by(f64::total_cmp);
    Ok(lat)
}

async fn audit_mark(stack: &Stack) -> Result<String> {
    let mut after = String::new();
    loop {
        let page = stack.engine.network().audit_log(None, &after, 1000).await?;
        match page.last() {
            Some(e) => after = e.id.clone(),
            None => return Ok(after),
        }
    }
}

/// One incremental pass of every child, all children at once (each its own store); whether
/// every pass finished (one cut short by the rate limit leaves its cursor where it was).
async fn poll_round(engine: &ferry_sync::Engine, children: &[ferry_sync::StoreConfig]) -> bool {
    let passes = children.iter().map(|c| {
        let engine = engine.clone();
        async move {
            match engine.reconcile_child(c, false, &mut |_| {}).await {
                Ok(_) => true,
                Err(e) => {
                    tracing::debug!(error = %e, "polling pass cut short");
                    false
                }
            }
        }
    });
    futures_util::future::join_all(passes)
        .await
        .into_iter()
        .all(|ok| ok)
}

pub async fn run(a: SyncArgs) -> Result<()> {
    let db = FreshDb::create(a.database_url.as_deref()).await?;
    let result = bench(&db.url, &a).await;
    db.drop_db().await;
    result
}

async fn bench(url: &str, a: &SyncArgs) -> Result<()> {
    let mock = crate::simulated::platform(None).await?;
    let queue = Queue::connect(url).await?;
    let mut cfg = StackConfig::new(Cipher::from_base64(&Cipher::generate_key())?);
    cfg.app.engine.public_url = String::new();
    // The simulated platform answers on loopback over plain http.
    cfg.app.client.outbound = ferry_connect::Outbound::insecure();
    cfg.worker = WorkerOptions {
        concurrency: 64,
        poll_interval: Duration::from_millis(200),
        ..WorkerOptions::default()
    };
    let stack = Stack::start(queue.clone(), cfg).await?;
    let p = mock.platform();
    let mut stores = Vec::new();
    for i in 0..=a.children {
        let name = if i == 0 {
            PARENT.to_owned()
        } else {
            format!("child-{i}")
        };
        let role = if i == 0 { Role::Parent } else { Role::Child };
        let limits = crate::simulated::PLUS;
        crate::simulated::add_store(&stack, &mock, &name, role, a.products, limits).await?;
        p.set_faults(&name, Faults::with(|f| f.latency_ms = a.api_latency_ms))?;
        stores.push(name);
    }
    println!(
        "{} children × {} products (2 variants), {} ms per API call, {}",
        a.children,
        a.products,
        a.api_latency_ms,
        stack.queue.backend()
    );
    let t = Instant::now();
    for s in &stores {
        stack.engine.connect_store(s).await?;
    }
    quiet(&stack, &mock, &stores).await?;
    println!("connected in {:.1} s", t.elapsed().as_secs_f64());
    let snap = p.snapshot(PARENT)?;
    let ids: Vec<u64> = snap["products"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x["id"].as_u64())
        .collect();

    let points = |stores: &[String]| -> u64 {
        stores
            .iter()
            .map(|s| p.counters(s).map(|c| c.points_spent).unwrap_or(0))
            .sum()
    };
    let mark = audit_mark(&stack).await?;
    let spent_before = points(&stores);
    let edits = edit(&mock, &queue, &ids, a.edits, a.rate, "Webhook edit").await?;
    quiet(&stack, &mock, &stores).await?;
    let points_per_edit = (points(&stores) - spent_before) as f64 / a.edits.max(1) as f64;
    let lat = latencies(&stack, &edits, a.children, &mark).await?;
    if lat.is_empty() {
        bail!("no edit reached every child");
    }
    let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
    println!(
        "ferry (webhooks): {} edits timed, p50 {p50:.0} ms, p99 {p99:.0} ms, max {:.0} ms, {points_per_edit:.0} API points per edit",
        lat.len(),
        lat.last().copied().unwrap_or(0.0)
    );

    let mut peer = json!(null);
    if !a.no_peer {
        // The peer: no webhooks from the parent; children polled by back-to-back incremental
        // passes.
        p.set_faults(
            PARENT,
            Faults {
                latency_ms: a.api_latency_ms,
                webhook_drop: 1.0,
                ..Faults::default()
            },
        )?;
        // Connecting left every child a cursor: the timed rounds are incremental.
        let children = stack.engine.network().children().await?;
        quiet(&stack, &mock, &stores).await?;
        let stop = tokio_util::sync::CancellationToken::new();
        let poller = {
            let engine = stack.engine.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut passes = 0u64;
                while !stop.is_cancelled() {
                    let _ = poll_round(&engine, &children).await;
                    passes += 1;
                }
                passes
            })
        };
        let mark = audit_mark(&stack).await?;
        let spent_before = points(&stores);
        let peer_edits = a.edits.min(20);
        let edits = edit(&mock, &queue, &ids, peer_edits, a.rate, "Polled edit").await?;
        // Until every edit has reached every child (or a minute passes).
        let deadline = Instant::now() + Duration::from_secs(60);
        while latencies(&stack, &edits, a.children, &mark).await?.len() < edits.len()
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.cancel();
        let passes = poller.await.unwrap_or(0);
        quiet(&stack, &mock, &stores).await?;
        let peer_points = (points(&stores) - spent_before) as f64 / peer_edits.max(1) as f64;
        let plat = latencies(&stack, &edits, a.children, &mark).await?;
        let (q50, q99) = (percentile(&plat, 0.5), percentile(&plat, 0.99));
        println!(
            "peer (polling, {passes} rounds of incremental passes): {} of {} edits timed, p50 {q50:.0} ms, p99 {q99:.0} ms, {peer_points:.0} API points per edit",
            plat.len(),
            edits.len()
        );
        peer = json!({"p50_ms": round2(q50), "p99_ms": round2(q99), "edits_timed": plat.len(), "rounds": passes, "points_per_edit": round2(peer_points)});
    }
    stack.shutdown().await;
    println!(
        "{}",
        json!({
            "bench": "sync",
            "backend": queue.backend(),
            "children": a.children,
            "products": a.products,
            "api_latency_ms": a.api_latency_ms,
            "edits_timed": lat.len(),
            "p50_ms": round2(p50),
            "p99_ms": round2(p99),
            "points_per_edit": round2(points_per_edit),
            "peer_polling": peer,
        })
    );
    Ok(())
}
