//! The axum application: routes, security headers, and a handle to run it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ferry_queue::Queue;
use serde_json::json;
use tokio::sync::oneshot;

use ferry_sync::webhooks::{Committer, Deliveries, WebhookStores};

pub struct AppState {
    pub queue: Queue,
    pub stores: WebhookStores,
    pub deliveries: Deliveries,
    pub body_limit: usize,
    /// The API's tokens and their roles; none: the API refuses every call.
    pub access: crate::access::Access,
    pub hardening: Hardening,
    /// The connectors' circuit breakers, shown by the admin API.
    pub breakers: ferry_connect::Breakers,
    /// Commits webhook deliveries in groups.
    pub committer: Committer,
    /// The sync engine (the network's stores, reconciliation), as the dashboard shows it.
    pub engine: ferry_sync::Engine,
    /// Orders taken through the orders API, as the dashboard lists them.
    pub orders: ferry_sync::orders::Orders,
}

/// HTTP limits and browser access.
#[derive(Debug, Clone)]
pub struct Hardening {
    /// A request not answered within this is answered 408.
    pub request_timeout: std::time::Duration,
    /// Origins allowed to call the API from a browser; none (the default): no CORS headers.
    pub cors_origins: Vec<String>,
    /// A connection that has not sent a whole request head within this of starting one (or of
    /// its previous answer, when kept alive) is closed: a client that trickles its headers
    /// holds nothing for long.
    pub header_read_timeout: std::time::Duration,
    /// The most connections open at once; the next ones wait in the kernel's backlog until one
    /// closes.
    pub max_connections: usize,
}

impl Default for Hardening {
    fn default() -> Self {
        Hardening {
            request_timeout: std::time::Duration::from_secs(30),
            cors_origins: Vec::new(),
            header_read_timeout: std::time::Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}

type Table = (
    Router<Arc<AppState>>,
    &'static [(&'static str, &'static str)],
);

/// The routes that need no token: webhooks carry signatures; probes and metrics are for the
/// platform running ferry.
fn public() -> Table {
    crate::api_routes! {
        POST "/webhooks/{platform}/{store}" => crate::ingress::receive,
        GET "/healthz" => healthz,
        GET "/readyz" => readyz,
        GET "/metrics" => crate::telemetry::render,
    }
}

/// The public routes' (method, path) pairs.
pub fn operations() -> &'static [(&'static str, &'static str)] {
    public().1
}

/// 1 MiB: far above Shopify's webhook payloads, small enough to refuse floods.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

pub fn router(state: Arc<AppState>) -> Router {
    router_with(state, Router::new(), Router::new())
}

/// The application with `extra` admin routes (the sync engine's), behind the same tokens and
/// hardening, and `open` routes that need no token (the install flow's, which checks its own
/// signatures).
pub fn router_with(
    state: Arc<AppState>,
    extra: Router<Arc<AppState>>,
    open: Router<Arc<AppState>>,
) -> Router {
    let hardening = state.hardening.clone();
    let limit = crate::error::BodyLimit(state.body_limit);
    let app = Router::new()
        .merge(crate::admin::routes(state.clone()))
        .merge(crate::admin::protect(extra, state.clone()))
        .merge(public().0)
        .merge(crate::ui::routes(state.clone()))
        .merge(open)
        .route_layer(axum::middleware::from_fn(crate::telemetry::track))
        .with_state(state)
        .layer(axum::Extension(limit))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            hardening.request_timeout,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ));
    let app = match cors(&hardening.cors_origins) {
        Some(layer) => app.layer(layer),
        None => app,
    };
    // The request id is set first and echoed last, so every layer and the handlers see it.
    // The security headers go on outermost: every answer has them, 408s, panics and CORS
    // preflights included.
    app.layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
        .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
            tower_http::request_id::MakeRequestUuid,
        ))
        .layer(axum::middleware::map_response(security_headers))
}

fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if allowed.is_empty() {
        return None;
    }
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(allowed)
            .allow_methods([axum::http::Method::GET, axum::http::Method::POST])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
            ]),
    )
}

/// A panic in a handler: 500 with no detail (the panic goes to the log).
fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown");
    tracing::error!(panic = detail, "handler panicked");
    let body = json!({"error": {"code": "internal", "message": "internal error"}});
    (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(body)).into_response()
}

async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    resp
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// Ready when the database answers (its migrations ran when the server started), within two
/// seconds: a probe wants an answer, not the pool's wait for a connection.
async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    let answered =
        tokio::time::timeout(std::time::Duration::from_secs(2), app.queue.queue_names()).await;
    match answered {
        Ok(Ok(_)) => axum::Json(json!({"status": "ready"})).into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready");
            unavailable()
        }
        Err(_) => {
            tracing::warn!("not ready: the database did not answer within 2 s");
            unavailable()
        }
    }
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"status": "unavailable"})),
    )
        .into_response()
}

/// A running server; stops when dropped.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Binds `addr` (port 0: any) and serves until the handle is dropped.
pub async fn start(addr: SocketAddr, state: Arc<AppState>) -> std::io::Result<Running> {
    start_with(addr, state, Router::new()).await
}

/// As `start`, with `extra` admin routes.
pub async fn start_with(
    addr: SocketAddr,
    state: Arc<AppState>,
    extra: Router<Arc<AppState>>,
) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    start_on(listener, state, extra, Router::new())
}

/// Serves on a listener bound beforehand (so its address can be known before the routes).
pub fn start_on(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    extra: Router<Arc<AppState>>,
    open: Router<Arc<AppState>>,
) -> std::io::Result<Running> {
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    crate::telemetry::handle();
    let hardening = state.hardening.clone();
    let app = router_with(state, extra, open);
    tokio::spawn(serve(listener, app, hardening, stopped));
    Ok(Running {
        addr,
        stop: Some(stop),
    })
}

/// Accepts connections while fewer than `max_connections` are open and serves each over
/// HTTP/1.1 with the header-read timeout; when stopped, stops accepting and lets the open
/// connections finish the requests they have (graceful shutdown).
async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    h: Hardening,
    mut stopped: oneshot::Receiver<()>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(h.max_connections.max(1)));
    let (drain, draining) = tokio::sync::watch::channel(false);
    loop {
        let permit = tokio::select! {
            _ = &mut stopped => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = &mut stopped => break,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut draining = draining.clone();
        let header_read_timeout = h.header_read_timeout;
        tokio::spawn(async move {
            let _slot = permit;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            let drained = async move {
                // The borrow of the flag ends here, before anything else is awaited.
                let _ = draining.wait_for(|d| *d).await.map(|_| ());
            };
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = drained => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    let _ = drain.send(true);
}
