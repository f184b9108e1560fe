//! The web tier, above the domain: signed webhook ingress into the queue (deduplicated in the
//! same transaction as the job), the admin API, the network's and the orders' routes, the
//! OpenAPI document, health and Prometheus metrics. `stack` assembles the whole application
//! on a listener; `ferry serve`, `ferry demo`, the benches and the tests all start it there.

/// Builds a router from `METHOD "path" => handler` lines and returns the `(method, path)` list
/// with it. The OpenAPI document is tested against these lists, so a route cannot be added
/// without the document saying so.
#[macro_export]
macro_rules! api_routes {
    ($($method:ident $path:literal => $handler:expr),+ $(,)?) => {{
        let router = ::axum::Router::new()
            $(.route($path, ::axum::routing::on(::axum::routing::MethodFilter::$method, $handler)))+;
        let ops: &'static [(&'static str, &'static str)] = &[$((stringify!($method), $path)),+];
        (router, ops)
    }};
}

pub mod access;
pub mod admin;
pub mod app;
pub mod error;
pub mod extract;
pub mod ingress;
pub mod install;
pub mod network_api;
pub mod openapi;
pub mod orders_api;
pub mod signature;
pub mod stack;
pub mod telemetry;
pub mod ui;
