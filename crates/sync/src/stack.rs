//! Everything in one process: the web tier (webhook ingress, admin API) and a worker running
//! the sync engine, on one database. What `ferry demo`, `ferry bench sync` and the end-to-end
//! tests run; production runs `ferry serve` and `ferry worker` as separate processes instead.

use std::net::SocketAddr;
use std::sync::Arc;

use ferry_queue::{Queue, Worker, WorkerOptions};
use ferry_server::app::{AppState, DEFAULT_BODY_LIMIT, Hardening, Running};
use ferry_server::crypto::Cipher;
use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, EngineOptions};
use crate::error::SyncError;
use crate::orders::{ORDERS_QUEUE, Orders, OrdersOptions};

pub struct StackConfig {
    pub listen: SocketAddr,
    pub cipher: Cipher,
    pub admin_tokens: Vec<String>,
    pub engine: EngineOptions,
    pub worker: WorkerOptions,
    pub client: ferry_connect::ClientOptions,
    pub orders: OrdersOptions,
}

impl StackConfig {
    pub fn new(cipher: Cipher) -> StackConfig {
        StackConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            cipher,
            admin_tokens: Vec::new(),
            engine: EngineOptions::default(),
            worker: WorkerOptions {
                concurrency: 32,
                ..WorkerOptions::default()
            },
            client: ferry_connect::ClientOptions::default(),
            orders: OrdersOptions::default(),
        }
    }
}

/// A running stack; stops (server and worker) when dropped.
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
        let server_db = ferry_server::db::Db::of(&queue).await?;
        let connect_db = ferry_connect::Db::of(&queue).await?;
        let stores =
            ferry_server::stores::Stores::new(server_db.clone(), cfg.cipher.clone(), queue.clock());
        let breakers =
            ferry_connect::Breakers::new(connect_db.clone(), queue.clock(), cfg.client.breaker);
        let state = Arc::new(AppState {
            breakers,
            committer: ferry_server::commit::Committer::start(queue.clone()),
            queue: queue.clone(),
            db: server_db,
            stores: stores.clone(),
            body_limit: DEFAULT_BODY_LIMIT,
            admin_tokens: cfg.admin_tokens,
            hardening: Hardening::default(),
        });
        // The listener first: the engine needs the server's address for webhooks, the server
        // the engine for its routes.
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| SyncError::Invalid(format!("listening on {}: {e}", cfg.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(|e| SyncError::Invalid(e.to_string()))?;
        let mut engine_opts = cfg.engine;
        if engine_opts.public_url.is_empty() {
            engine_opts.public_url = format!("http://{addr}");
        }
        let client = ferry_connect::Client::new(connect_db, queue.clock(), "shopify", cfg.client);
        let engine = Engine::new(queue.clone(), cfg.cipher, client, stores, engine_opts).await?;
        let orders = Orders::new(engine.clone(), cfg.orders);
        let routes =
            crate::api::routes(engine.clone()).merge(crate::orders_api::routes(orders.clone()));
        let server = ferry_server::app::start_on(listener, state, routes)
            .map_err(|e| SyncError::Invalid(format!("listening on {addr}: {e}")))?;
        let mut queues = Engine::queues().to_vec();
        queues.push(ORDERS_QUEUE);
        let worker = orders
            .register(engine.register(Worker::builder(queue.clone()).options(cfg.worker)))
            .queues(&queues)
            .build();
        let stop = CancellationToken::new();
        let token = stop.clone();
        let handle = tokio::spawn(async move {
            if let Err(e) = worker.run(token).await {
                tracing::error!(error = %e, "sync worker stopped");
            }
        });
        Ok(Stack {
            server,
            engine,
            orders,
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
