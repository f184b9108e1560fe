//! The application assembled on a listener: the webhook stores, the connectors' client and
//! breakers, the sync engine, the orders and every route, behind one set of hardening layers.
//! [`serve_on`] is the one place that does it: `ferry serve`, `ferry demo`, the benches and the
//! tests all call it. [`Stack`] adds a worker running the engine's and the orders' jobs in the
//! same process (what the demo, the sync bench and the end-to-end tests run; production runs
//! `ferry serve` and `ferry worker` as separate processes instead).

use std::sync::Arc;

use ferry_core::Cipher;
use ferry_queue::{Queue, Worker, WorkerOptions};
use ferry_sync::orders::{ORDERS_QUEUE, Orders, OrdersOptions};
use ferry_sync::webhooks::{Committer, Deliveries, WebhookStores};
use ferry_sync::{Engine, EngineOptions, SyncError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::access::{Access, ConfiguredToken, Role};
use crate::app::{AppState, DEFAULT_BODY_LIMIT, Hardening, Running};

/// What the application is built from, beside its database.
pub struct AppConfig {
    pub cipher: Cipher,
    /// Tokens with every right (the `admin` role).
    pub admin_tokens: Vec<String>,
    /// Tokens with a name and a role from the configuration (`[[tokens]]`).
    pub tokens: Vec<ConfiguredToken>,
    pub body_limit: usize,
    pub hardening: Hardening,
    pub engine: EngineOptions,
    pub client: ferry_connect::ClientOptions,
    pub orders: OrdersOptions,
}

impl AppConfig {
    pub fn new(cipher: Cipher) -> AppConfig {
        AppConfig {
            cipher,
            admin_tokens: Vec::new(),
            tokens: Vec::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            hardening: Hardening::default(),
            engine: EngineOptions::default(),
            client: ferry_connect::ClientOptions::default(),
            orders: OrdersOptions::default(),
        }
    }
}

/// A serving application: its HTTP handle and the domain objects behind its routes.
pub struct Serving {
    pub server: Running,
    pub state: Arc<AppState>,
    pub engine: Engine,
    pub orders: Orders,
}

/// Builds the application on `queue`'s database (every crate's tables migrated in) and serves
/// it on `listener`. The engine's webhook URL defaults to the listener's address.
pub async fn serve_on(
    listener: TcpListener,
    queue: Queue,
    cfg: AppConfig,
) -> Result<Serving, SyncError> {
    // The engine migrates the sync tables (below, before anything reads them); the stores and
    // deliveries only hold the handle until then.
    let sync_db = queue.db();
    let connect_db = ferry_connect::db::open(&queue).await?;
    let stores = WebhookStores::new(sync_db.clone(), cfg.cipher.clone(), queue.clock());
    let breakers =
        ferry_connect::Breakers::new(connect_db.clone(), queue.clock(), cfg.client.breaker);
    let mut configured: Vec<ConfiguredToken> = cfg
        .admin_tokens
        .iter()
        .enumerate()
        .map(|(i, t)| ConfiguredToken::from_plain(&format!("admin_tokens[{i}]"), Role::Admin, t))
        .collect();
    configured.extend(cfg.tokens);
    let access = Access::open(&queue, configured)
        .await
        .map_err(|e| SyncError::Invalid(format!("the token tables: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| SyncError::Invalid(format!("the listener's address: {e}")))?;
    let mut engine_opts = cfg.engine;
    if engine_opts.public_url.is_empty() {
        engine_opts.public_url = format!("http://{addr}");
    }
    let client = ferry_connect::Client::new(connect_db, queue.clock(), "shopify", cfg.client);
    let engine = Engine::new(
        queue.clone(),
        cfg.cipher,
        client,
        stores.clone(),
        engine_opts,
    )
    .await?;
    let orders = Orders::new(engine.clone(), cfg.orders);
    let state = Arc::new(AppState {
        access,
        breakers,
        committer: Committer::start(queue.clone()),
        queue: queue.clone(),
        stores: stores.clone(),
        engine: engine.clone(),
        orders: orders.clone(),
        deliveries: Deliveries::new(sync_db),
        body_limit: cfg.body_limit,
        hardening: cfg.hardening,
    });
    let routes =
        crate::network_api::routes(engine.clone()).merge(crate::orders_api::routes(orders.clone()));
    let open = crate::install::routes(engine.clone());
    let server = crate::app::start_on(listener, state.clone(), routes, open)
        .map_err(|e| SyncError::Invalid(format!("serving on {addr}: {e}")))?;
    Ok(Serving {
        server,
        state,
        engine,
        orders,
    })
}

/// The worker that runs the engine's and the orders' jobs.
pub fn worker(engine: &Engine, orders: &Orders, queue: Queue, opts: WorkerOptions) -> Worker {
    let mut queues = Engine::queues().to_vec();
    queues.push(ORDERS_QUEUE);
    orders
        .register(engine.register(Worker::builder(queue).options(opts)))
        .queues(&queues)
        .build()
}

pub struct StackConfig {
    pub listen: std::net::SocketAddr,
    pub app: AppConfig,
    pub worker: WorkerOptions,
}

impl StackConfig {
    pub fn new(cipher: Cipher) -> StackConfig {
        StackConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            app: AppConfig::new(cipher),
            worker: WorkerOptions {
                concurrency: 32,
                ..WorkerOptions::default()
            },
        }
    }
}

/// The application and a worker in one process; stops (server and worker) when dropped.
pub struct Stack {
    pub server: Running,
    pub engine: Engine,
    pub orders: Orders,
    pub queue: Queue,
    stop: CancellationToken,
    worker: Option<tokio::task::JoinHandle<()>>,
}

impl Stack {
    pub async fn start(queue: Queue, cfg: StackConfig) -> Result<Stack, SyncError> {
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| SyncError::Invalid(format!("listening on {}: {e}", cfg.listen)))?;
        let s = serve_on(listener, queue.clone(), cfg.app).await?;
        let worker = worker(&s.engine, &s.orders, queue.clone(), cfg.worker);
        let stop = CancellationToken::new();
        let token = stop.clone();
        let handle = tokio::spawn(async move {
            if let Err(e) = worker.run(token).await {
                tracing::error!(error = %e, "sync worker stopped");
            }
        });
        Ok(Stack {
            server: s.server,
            engine: s.engine,
            orders: s.orders,
            queue,
            stop,
            worker: Some(handle),
        })
    }

    /// Stops the worker gracefully and waits for it.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(w) = self.worker.take() {
            let _ = w.await;
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
