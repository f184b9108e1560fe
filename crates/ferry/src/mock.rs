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
    /// Share of webhook deliveries sent more than once (twice, or up to
    /// --webhook-copies-max times; the later copies up to --webhook-hold-ms late).
    #[arg(long, default_value_t = 0.0)]
    webhook_duplicate: f64,
    /// How many times at most a duplicated delivery is sent (2 or 3).
    #[arg(long, default_value_t = 2)]
    webhook_copies_max: u32,
    /// Share of webhook deliveries held back by --webhook-hold-ms.
    #[arg(long, default_value_t = 0.0)]
    webhook_hold: f64,
    #[arg(long, default_value_t = 5_000)]
    webhook_hold_ms: u64,
    /// Share of webhook deliveries dropped.
    #[arg(long, default_value_t = 0.0)]
    webhook_drop: f64,
    /// Every access token (and refresh token) lives this long instead of Shopify's lifetimes
    /// (a day for client credentials, an hour for offline tokens), so renewals happen soon.
    #[arg(long)]
    token_ttl_s: Option<u64>,
    /// Objects a bulk operation writes per second, each operation running at once on a shop
    /// at this rate (Shopify publishes no figure; see `ferry_mock::DEFAULT_ROWS_PER_S`).
    #[arg(long, default_value_t = ferry_mock::DEFAULT_ROWS_PER_S)]
    bulk_rows_per_s: f64,
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
            webhook_copies_max: self.webhook_copies_max,
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
    if !(args.bulk_rows_per_s.is_finite() && args.bulk_rows_per_s > 0.0) {
        anyhow::bail!("--bulk-rows-per-s must be a positive number");
    }
    server
        .platform()
        .set_bulk_default(ferry_mock::BulkSettings {
            rows_per_s: args.bulk_rows_per_s,
            ..ferry_mock::BulkSettings::default()
        });
    println!("ferry mock listening on {}", server.url());
    println!("control API: {}/control/stores", server.url());
    server
        .platform()
        .set_token_ttl(args.token_ttl_s.map(std::time::Duration::from_secs));
    // One app of the stores' organization, for the client credentials grant and the install
    // flow (`ferry apps add ferry --client-id …` with FERRY_CLIENT_SECRET).
    let app = server.platform().create_app(
        "ferry",
        ferry_mock::DEFAULT_ORGANIZATION,
        &ferry_sync::credentials::NEEDED_SCOPES,
    );
    println!(
        "app ferry: client id {}  client secret {}  (shop domains: store-N.myshopify.com; shop_url = \"{}/stores/{{shop}}\")",
        app.client_id,
        app.client_secret,
        server.url()
    );
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
