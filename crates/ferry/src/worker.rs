//! `ferry worker`: runs jobs: the sync engine's (given the encryption key that opens the
//! stores' tokens) and the diagnostic kinds operators use to check a deployment end to end.

use std::time::Duration;

use anyhow::Result;
use ferry_queue::{JobError, Worker, WorkerOptions};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::DbArgs;

#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Queues to take jobs from (config: queues).
    #[arg(long, value_delimiter = ',')]
    pub queues: Option<Vec<String>>,
    /// Handlers running at once (config: concurrency).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Do not LISTEN for wake-ups (behind PgBouncer in transaction mode); poll only.
    #[arg(long)]
    pub no_listen: bool,
    /// The key that opens the stores' tokens; with it the worker runs the sync engine (and
    /// takes the `webhooks` and `sync` queues too). Config: encryption_key.
    #[arg(long, hide_env_values = true)]
    pub encryption_key: Option<String>,
    /// Where the stores send their webhooks: the public URL of `ferry serve` (config:
    /// public_url).
    #[arg(long)]
    pub public_url: Option<String>,
    /// When the incremental reconciliation of every child runs (cron, UTC; "off" for never;
    /// config: reconcile_cron).
    #[arg(long)]
    pub reconcile_cron: Option<String>,
}

/// `ferry.sleep`: sleeps, or stops early when cancelled. For smoke and crash tests.
#[derive(Deserialize)]
struct Sleep {
    ms: u64,
}

/// `ferry.fail`: fails with the given message (retried like any failure).
#[derive(Deserialize)]
struct Fail {
    message: String,
}

/// `ferry.shopify.adjust`: adjusts one inventory level through the Shopify connector, with the
/// job's idempotency key. A check of a store connection end to end (and the load of
/// `ferry bench api`); the token comes from `FERRY_SHOPIFY_TOKEN`, never from the payload.
#[derive(Deserialize)]
struct ShopifyAdjust {
    graphql_url: String,
    inventory_item_id: String,
    location_id: String,
    delta: i64,
    key: String,
}

/// Registers `ferry.shopify.adjust` (connector calls share the database's rate budgets).
pub fn connector_kinds(
    b: ferry_queue::WorkerBuilder,
    client: ferry_connect::Client,
) -> ferry_queue::WorkerBuilder {
    b.handle("ferry.shopify.adjust", move |p: ShopifyAdjust, _| {
        let client = client.clone();
        async move {
            let token = std::env::var("FERRY_SHOPIFY_TOKEN")
                .map_err(|_| JobError::fatal("FERRY_SHOPIFY_TOKEN is not set"))?;
            let creds = ferry_connect::StaticToken(ferry_connect::Secret::new(token));
            let shop = ferry_connect::shopify::ShopifyConnector::new(
                client,
                &p.graphql_url,
                std::sync::Arc::new(creds),
            );
            let change = ferry_connect::shopify::model::InventoryDelta {
                inventory_item_id: p.inventory_item_id,
                location_id: p.location_id,
                delta: p.delta,
                change_from: None,
            };
            shop.adjust_inventory(&p.key, "correction", &[change])
                .await
                .map(|_| ())
                .map_err(ferry_connect::ConnectError::into_job_error)
        }
    })
}

/// Registers the diagnostic kinds: `ferry.noop`, `ferry.sleep`, `ferry.fail`.
pub fn diagnostics(b: ferry_queue::WorkerBuilder) -> ferry_queue::WorkerBuilder {
    b.handle("ferry.noop", |_: serde_json::Value, _| async { Ok(()) })
        .handle("ferry.sleep", |p: Sleep, ctx| async move {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(p.ms)) => Ok(()),
                _ = ctx.cancel.cancelled() => Err(JobError::retry("cancelled while sleeping")),
            }
        })
        .handle("ferry.fail", |p: Fail, _| async move {
            Err(JobError::retry(p.message))
        })
}

pub async fn run(args: WorkerArgs) -> Result<()> {
    let cfg = crate::config::get();
    let queue = crate::jobs::open(&args.db).await?;
    let names = args.queues.clone().unwrap_or_else(|| cfg.queues.clone());
    let queues: Vec<&str> = names.iter().map(String::as_str).collect();
    let key = args
        .encryption_key
        .clone()
        .or_else(|| Some(cfg.encryption_key.clone()).filter(|k| !k.is_empty()));
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| cfg.public_url.clone());
    let reconcile_cron = args
        .reconcile_cron
        .clone()
        .unwrap_or_else(|| cfg.reconcile_cron.clone());
    let opts = WorkerOptions {
        listen: !args.no_listen,
        buffer: cfg.buffer,
        ..WorkerOptions::default()
    };
    let db = ferry_connect::db::open(&queue).await?;
    let client_opts = ferry_connect::ClientOptions {
        // Only `ferry bench api` turns pacing off, to measure the peer it is compared with.
        pace: std::env::var("FERRY_BENCH_UNPACED").is_err(),
        ..crate::config::get().client_options()
    };
    let client = ferry_connect::Client::new(db, queue.clock(), "shopify", client_opts);
    let mut builder = diagnostics(Worker::builder(queue.clone()).options(opts));
    let mut queues = queues;
    if let Some(key) = &key {
        let cipher = ferry_core::Cipher::from_base64(key)
            .map_err(|e| anyhow::anyhow!("the encryption key: {e}"))?;
        let stores = ferry_sync::webhooks::WebhookStores::new(
            ferry_sync::db::open(&queue).await?,
            cipher.clone(),
            queue.clock(),
        );
        let engine = ferry_sync::Engine::new(
            queue.clone(),
            cipher,
            client.clone(),
            stores,
            crate::config::get().engine_options(public_url),
        )
        .await?;
        if reconcile_cron != "off" {
            engine.schedule_reconcile(&reconcile_cron).await?;
        }
        // Orders a server left half done are finished (or undone) here.
        let orders = ferry_sync::orders::Orders::new(engine.clone(), cfg.orders());
        builder = orders.register(engine.register(builder));
        for q in ferry_sync::Engine::queues()
            .into_iter()
            .chain([ferry_sync::orders::ORDERS_QUEUE])
        {
            if !queues.contains(&q) {
                queues.push(q);
            }
        }
    }
    let worker = connector_kinds(builder, client)
        .queues(&queues)
        .concurrency(args.concurrency.unwrap_or(cfg.concurrency))
        .build();
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_on(shutdown.clone()));
    tracing::info!(worker = worker.id(), backend = queue.backend(), queues = ?queues, "worker started");
    worker.run(shutdown).await?;
    tracing::info!(worker = worker.id(), "worker stopped");
    Ok(())
}

/// Fires `token` on SIGINT or SIGTERM.
pub async fn signal_on(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested");
    token.cancel();
}
