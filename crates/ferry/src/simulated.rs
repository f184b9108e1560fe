//! What the demo and the sync benchmark share: stores on the in-process simulated platform
//! joined to the network, and when the whole thing has gone quiet.

use anyhow::Result;
use ferry_http::stack::Stack;
use ferry_mock::MockServer;
use ferry_sync::{Role, Rules};

/// Creates a simulated store seeded with `products` products of 2 variants (SKUs by
/// position, so stores seeded alike share them), on Shopify Plus limits (20,000 points
/// restoring 1,000/s: where store networks live), and adds it to the network.
pub async fn add_store(
    stack: &Stack,
    mock: &MockServer,
    name: &str,
    role: Role,
    products: usize,
) -> Result<()> {
    let p = mock.platform();
    let info = p.create_store(Some(name))?;
    p.seed_catalog(name, products, 2)?;
    p.set_graphql_bucket(name, 20_000.0, 1_000.0)?;
    stack
        .engine
        .add_store(
            name,
            role,
            &mock.graphql_url(name),
            &info.access_token,
            &info.webhook_secret,
            &Rules::default(),
        )
        .await?;
    Ok(())
}

/// No webhook on its way to ferry and no sync job waiting or running.
pub async fn idle(stack: &Stack, mock: &MockServer, stores: &[String]) -> Result<bool> {
    let in_flight: u64 = stores
        .iter()
        .map(|s| mock.platform().webhook_counters(s).in_flight)
        .sum();
    Ok(in_flight == 0 && !stack.engine.busy().await?)
}
