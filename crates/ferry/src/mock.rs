//! `ferry mock`: runs the simulated commerce platform until SIGINT or SIGTERM.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use ferry_mock::{Faults, MockConfig, MockServer};
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Debug)]
pub struct MockArgs {
    /// Where to listen (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8787")]
    addr: SocketAddr,
    /// Stores to create at start.
    #[arg(long, default_value_t = 1)]
    stores: usize,
    /// Products seeded into each store's catalog (GraphQL) and items into its REST API.
    #[arg(long, default_value_t = 100)]
    products: usize,
    /// Variants per seeded product.
    #[arg(long, default_value_t = 3)]
    variants: usize,
    /// Seeds catalogs, credentials and faults: the same seed gives the same platform.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Added to every API request (ms).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of requests answered 503, nothing applied.
    #[arg(long, default_value_t = 0.0)]
    error_5xx: f64,
    /// Share of requests answered 429 with Retry-After.
    #[arg(long, default_value_t = 0.0)]
    throttle_429: f64,
    #[arg(long, default_value_t = 2)]
    retry_after_s: u64,
    /// Share of requests never answered.
    #[arg(long, default_value_t = 0.0)]
    hang: f64,
    /// Share of writes applied, then answered 500.
    #[arg(long, default_value_t = 0.0)]
    applied_then_5xx: f64,
    /// Share of webhook deliveries sent twice.
    #[arg(long, default_value_t = 0.0)]
    webhook_duplicate: f64,
    /// Share of webhook deliveries held back by --webhook-hold-ms.
    #[arg(long, default_value_t = 0.0)]
    webhook_hold: f64,
    #[arg(long, default_value_t = 5_000)]
    webhook_hold_ms: u64,
    /// Share of webhook deliveries dropped.
    #[arg(long, default_value_t = 0.0)]
    webhook_drop: f64,
}

impl MockArgs {
    fn faults(&self) -> Faults {
        Faults {
            latency_ms: self.latency_ms,
            error_5xx: self.error_5xx,
            throttle_429: self.throttle_429,
            retry_after_s: self.retry_after_s,
            hang: self.hang,
            applied_then_5xx: self.applied_then_5xx,
            webhook_duplicate: self.webhook_duplicate,
            webhook_hold: self.webhook_hold,
            webhook_hold_ms: self.webhook_hold_ms,
            webhook_drop: self.webhook_drop,
        }
    }
}

pub async fn run(args: MockArgs) -> Result<()> {
    let cfg = MockConfig {
        addr: args.addr,
        seed: args.seed,
        ..MockConfig::default()
    };
    let server = MockServer::start(cfg)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    println!("ferry mock listening on {}", server.url());
    println!("control API: {}/control/stores", server.url());
    for _ in 0..args.stores {
        let info = server.platform().create_store(None)?;
        server.platform().seed_items(&info.name, args.products)?;
        server
            .platform()
            .seed_catalog(&info.name, args.products, args.variants)?;
        server.platform().set_faults(&info.name, args.faults())?;
        // A mock's credentials are printed on purpose: they are what a tester needs.
        println!(
            "store {}: graphql {}  rest {}  access token {}  webhook secret {}",
            info.name,
            server.graphql_url(&info.name),
            server.rest_url(&info.name),
            info.access_token,
            info.webhook_secret
        );
    }
    let stop = CancellationToken::new();
    tokio::spawn(crate::worker::signal_on(stop.clone()));
    stop.cancelled().await;
    Ok(())
}
