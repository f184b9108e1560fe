//! `ferry mock`: runs the simulated commerce platform until SIGINT or SIGTERM.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use ferry_mock::{MockConfig, MockServer};
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Debug)]
pub struct MockArgs {
    /// Where to listen (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8787")]
    addr: SocketAddr,
    /// Stores to create at start.
    #[arg(long, default_value_t = 1)]
    stores: usize,
    /// Items seeded into each store.
    #[arg(long, default_value_t = 100)]
    products: usize,
    /// Seeds catalogs and credentials: the same seed gives the same platform.
    #[arg(long, default_value_t = 42)]
    seed: u64,
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
        // A mock's credentials are printed on purpose: they are what a tester needs.
        println!(
            "store {}: rest {}  access token {}  webhook secret {}",
            info.name,
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
