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
        let app = crate::rest::routes()
            .merge(crate::payments::routes())
            .route("/control/stores", post(create_store))
            .route("/control/stores/{store}", get(store_state))
            .route("/control/stores/{store}/webhooks", post(subscribe))
            .route("/control/stores/{store}/faults", post(set_faults))
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
    /// Items to seed.
    #[serde(default)]
    items: usize,
}

async fn create_store(
    State(p): State<Arc<Platform>>,
    body: Option<Json<NewStore>>,
) -> Result<Json<Value>, MockError> {
    let req = body.map(|b| b.0).unwrap_or_default();
    let info = p.create_store(req.name.as_deref())?;
    p.seed_items(&info.name, req.items)?;
    Ok(Json(json!(info)))
}

async fn store_state(
    State(p): State<Arc<Platform>>,
    Path(store): Path<String>,
) -> Result<Json<Value>, MockError> {
    Ok(Json(json!({ "name": store, "items": p.items(&store)? })))
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
