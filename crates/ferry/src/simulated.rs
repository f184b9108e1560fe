//! What the demo and the sync benchmark share: stores on the in-process simulated platform
//! joined to the network, and when the whole thing has gone quiet.

use std::time::Duration;

use anyhow::Result;
use ferry_http::stack::Stack;
use ferry_mock::{MockConfig, MockServer};
use ferry_sync::{Role, Rules};

/// Shopify Plus limits (20,000 points restoring 1,000/s: where store networks live).
pub const PLUS: (f64, f64) = (20_000.0, 1_000.0);

/// The simulated platform in process, on the real clock, its webhooks retried after 500 ms;
/// `seed` fixes its random draws (the platform's own default without one).
pub async fn platform(seed: Option<u64>) -> Result<MockServer> {
    let defaults = MockConfig::default();
    Ok(MockServer::start(MockConfig {
        seed: seed.unwrap_or(defaults.seed),
        ..MockConfig::retrying_after(Duration::from_millis(500))
    })
    .await?)
}

/// Seeds a simulated store (made unless it exists) with `products` products of 2 variants
/// (SKUs by position, so stores seeded alike share them), gives it a GraphQL bucket of
/// `limits` (points, restored per second), and adds it to the network.
pub async fn add_store(
    stack: &Stack,
    mock: &MockServer,
    name: &str,
    role: Role,
    products: usize,
    limits: (f64, f64),
) -> Result<()> {
    let info = seed_store(mock, name, products, limits)?;
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

/// A simulated store (made unless it exists) seeded with `products` products of 2 variants and
/// a GraphQL bucket of `limits`.
fn seed_store(
    mock: &MockServer,
    name: &str,
    products: usize,
    limits: (f64, f64),
) -> Result<ferry_mock::StoreInfo> {
    let p = mock.platform();
    let info = match p.store_info(name) {
        Ok(info) => info,
        Err(_) => p.create_store(Some(name))?,
    };
    p.seed_catalog(name, products, 2)?;
    p.set_graphql_bucket(name, limits.0, limits.1)?;
    Ok(info)
}

/// As [`add_store`], but the store is reached the 2026 way: through the registered app `app`
/// on the client credentials grant, by its shop domain (`{name}.myshopify.com`; the engine's
/// `shop_url` must lead to `mock`).
pub async fn add_app_store(
    stack: &Stack,
    mock: &MockServer,
    name: &str,
    role: Role,
    products: usize,
    limits: (f64, f64),
    app: &str,
) -> Result<()> {
    seed_store(mock, name, products, limits)?;
    stack
        .engine
        .add_app_store(
            name,
            role,
            &format!("{name}.myshopify.com"),
            ferry_sync::credentials::Kind::ClientCredentials,
            &ferry_sync::credentials::AppRef::Named(app.to_owned()),
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
