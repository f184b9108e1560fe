//! The HTTP server: one listener for every store, plus the control API under `/control`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use ferry_core::{Clock, SystemClock};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::error::MockError;
use crate::platform::Platform;

#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Where to listen; port 0 picks a free port.
    pub addr: SocketAddr,
    pub clock: Arc<dyn Clock>,
    /// Seeds every random choice (catalogs, credentials).
    pub seed: u64,
    /// The first webhook retry waits this long; each next one twice as long (8 retries).
    pub webhook_backoff: std::time::Duration,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            clock: Arc::new(SystemClock),
            seed: 42,
            // Shopify spreads 8 retries over about 4 hours.
            webhook_backoff: std::time::Duration::from_secs(60),
        }
    }
}

impl MockConfig {
    /// The defaults, but webhook retries starting after `backoff` (tests and benchmarks that
    /// wait for a failed delivery to arrive).
    pub fn retrying_after(backoff: std::time::Duration) -> MockConfig {
        MockConfig {
            webhook_backoff: backoff,
            ..MockConfig::default()
        }
    }
}

/// A running mock platform. Stops when dropped.
pub struct MockServer {
    addr: SocketAddr,
    platform: Arc<Platform>,
    stop: Option<oneshot::Sender<()>>,
}

impl MockServer {
    pub async fn start(cfg: MockConfig) -> std::io::Result<MockServer> {
        let platform = Arc::new(Platform::new(cfg.clock, cfg.seed));
        crate::webhooks::spawn_deliverer(&platform, cfg.webhook_backoff);
        let listener = tokio::net::TcpListener::bind(cfg.addr).await?;
        let addr = listener.local_addr()?;
        platform.set_base_url(format!("http://{addr}"));
        crate::bulk::spawn_runner(&platform);
        let app = crate::rest::routes()
            .merge(crate::payments::routes())
            .merge(crate::graphql::routes())
            .merge(crate::oauth::routes())
            .merge(crate::apps::routes())
            .merge(crate::bulk::routes())
            .route("/control/stores", post(create_store))
            .route("/control/stores/{store}", get(store_state))
            .route("/control/stores/{store}/webhooks", post(subscribe))
            .route("/control/stores/{store}/faults", post(set_faults))
            .route("/control/stores/{store}/counters", get(counters))
            .route("/control/stores/{store}/limits", post(set_limits))
            .route(
                "/control/stores/{store}/products/{id}",
                post(edit_product).delete(delete_product),
            )
            .route("/control/stores/{store}/variants/{id}", post(edit_variant))
            .route("/control/stores/{store}/inventory", post(set_stock))
            .route("/control/stores/{store}/orders", post(place_order))
            .with_state(platform.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "mock server stopped");
            }
        });
        Ok(MockServer {
            addr,
            platform,
            stop: Some(stop),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The base URL of a store's REST API.
    pub fn rest_url(&self, store: &str) -> String {
        format!("{}/stores/{store}/rest", self.url())
    }

    /// The URL of a store's Admin GraphQL API.
    /// Where a store's shop domain points (`https://{shop}.myshopify.com` on Shopify): its
    /// `/admin/oauth/…` and `/admin/api/…` are under it.
    pub fn shop_url(&self, store: &str) -> String {
        format!("{}/stores/{store}", self.url())
    }

    pub fn graphql_url(&self, store: &str) -> String {
        format!(
            "{}/stores/{store}/admin/api/{}/graphql.json",
            self.url(),
            crate::graphql::API_VERSION
        )
    }

    /// The OAuth token endpoint of a store (`grant_type=refresh_token`).
    pub fn oauth_url(&self, store: &str) -> String {
        format!("{}/stores/{store}/oauth/token", self.url())
    }

    /// The base URL of a store's payments API (`…/v1/payment_intents`).
    pub fn payments_url(&self, store: &str) -> String {
        format!("{}/stores/{store}/payments", self.url())
    }

    /// The platform, for library calls from tests (create stores, seed, act as a merchant).
    pub fn platform(&self) -> &Arc<Platform> {
        &self.platform
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[derive(Deserialize, Default)]
struct NewStore {
    name: Option<String>,
    /// REST items to seed.
    #[serde(default)]
    items: usize,
    /// Catalog products to seed, with `variants` each (default 1).
    #[serde(default)]
    products: usize,
    variants: Option<usize>,
    /// Copies another store's catalog instead of seeding one.
    copy_of: Option<String>,
    /// With `copy_of`: tag each copy `{tag_copies}{source product id}`.
    tag_copies: Option<String>,
}

async fn create_store(
    State(p): State<Arc<Platform>>,
    body: Option<Json<NewStore>>,
) -> Result<Json<Value>, MockError> {
    let req = body.map(|b| b.0).unwrap_or_default();
    let info = p.create_store(req.name.as_deref())?;
    p.seed_items(&info.name, req.items)?;
    match &req.copy_of {
        Some(from) => p.copy_catalog(from, &info.name, req.tag_copies.as_deref())?,
        None => p.seed_catalog(&info.name, req.products, req.variants.unwrap_or(1))?,
    }
    Ok(Json(json!(info)))
}

async fn store_state(
    State(p): State<Arc<Platform>>,
    Path(store): Path<String>,
) -> Result<Json<Value>, MockError> {
    Ok(Json(p.snapshot(&store)?))
}

#[derive(Deserialize)]
struct NewSubscription {
    topic: String,
    url: String,
}

async fn subscribe(
    State(p): State<Arc<Platform>>,
    Path(store): Path<String>,
    Json(req): Json<NewSubscription>,
) -> Result<Json<Value>, MockError> {
    Ok(Json(json!(p.subscribe(&store, &req.topic, &req.url)?)))
}

async fn set_faults(
    State(p): State<Arc<Platform>>,
    Path(store): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, MockError> {
    let faults: crate::faults::Faults = serde_json::from_slice(&body)
        .map_err(|e| MockError::BadRequest(format!("invalid faults: {e}")))?;
    p.set_faults(&store, faults.clone())?;
    Ok(Json(json!(faults)))
}

/// A JSON body, or the JSON error saying why it is not one.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, MockError> {
    serde_json::from_slice(body).map_err(|e| MockError::BadRequest(format!("invalid body: {e}")))
}

async fn counters(
    State(p): State<Arc<Platform>>,
    Path(store): Path<String>,
) -> Result<Json<Value>, MockError> {
    Ok(Json(json!({
        "api": p.counters(&store)?,
        "webhooks": p.webhook_counters(&store),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Limits {
    graphql_bucket: Option<f64>,
    graphql_restore_per_s: Option<f64>,
    rest_bucket: Option<f64>,
    rest_leak_per_s: Option<f64>,
}

async fn set_limits(
    State(p): State<Arc<Platform>>,
    Path(store): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, MockError> {
    let l: Limits = parse(&body)?;
    let positive = |v: Option<f64>| v.is_none_or(|x| x.is_finite() && x > 0.0);
    if ![
        l.graphql_bucket,
        l.graphql_restore_per_s,
        l.rest_bucket,
        l.rest_leak_per_s,
    ]
    .into_iter()
    .all(positive)
    {
        return Err(MockError::BadRequest("limits are positive numbers".into()));
    }
    if l.graphql_bucket.is_some() || l.graphql_restore_per_s.is_some() {
        p.set_graphql_bucket(
            &store,
            l.graphql_bucket.unwrap_or(2000.0),
            l.graphql_restore_per_s.unwrap_or(100.0),
        )?;
    }
    if l.rest_bucket.is_some() || l.rest_leak_per_s.is_some() {
        p.set_rest_bucket(
            &store,
            l.rest_bucket.unwrap_or(40.0),
            l.rest_leak_per_s.unwrap_or(2.0),
        )?;
    }
    Ok(Json(json!({ "ok": true })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductEdit {
    title: Option<String>,
    status: Option<String>,
    vendor: Option<String>,
    product_type: Option<String>,
    tags: Option<Vec<String>>,
    description_html: Option<String>,
}

async fn edit_product(
    State(p): State<Arc<Platform>>,
    Path((store, id)): Path<(String, u64)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, MockError> {
    let e: ProductEdit = parse(&body)?;
    let spec = crate::catalog::ProductSpec {
        title: e.title,
        status: e.status,
        vendor: e.vendor,
        product_type: e.product_type,
        tags: e.tags,
        description_html: e.description_html,
        ..Default::default()
    };
    p.merchant_edit_product(&store, id, spec)?;
    Ok(Json(json!({ "ok": true })))
}

async fn delete_product(
    State(p): State<Arc<Platform>>,
    Path((store, id)): Path<(String, u64)>,
) -> Result<Json<Value>, MockError> {
    p.merchant_delete_product(&store, id)?;
    Ok(Json(json!({ "ok": true })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VariantEdit {
    price: Option<String>,
    sku: Option<String>,
}

async fn edit_variant(
    State(p): State<Arc<Platform>>,
    Path((store, id)): Path<(String, u64)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, MockError> {
    let e: VariantEdit = parse(&body)?;
    p.merchant_edit_variant(&store, id, e.price, e.sku)?;
    Ok(Json(json!({ "ok": true })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StockCount {
    inventory_item_id: u64,
    location_id: Option<u64>,
    available: i64,
}

async fn set_stock(
    State(p): State<Arc<Platform>>,
    Path(store): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, MockError> {
    let c: StockCount = parse(&body)?;
    p.merchant_set_stock(&store, c.inventory_item_id, c.location_id, c.available)?;
    Ok(Json(json!({ "ok": true })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrder {
    lines: Vec<crate::actors::OrderLine>,
}

async fn place_order(
    State(p): State<Arc<Platform>>,
    Path(store): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, MockError> {
    let o: NewOrder = parse(&body)?;
    let id = p.place_order(&store, &o.lines)?;
    Ok(Json(
        json!({ "id": id, "admin_graphql_api_id": crate::catalog::gid("Order", id) }),
    ))
}
