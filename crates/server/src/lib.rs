//! `ferry serve`, the stateless web tier: signed webhook ingress into the queue (deduplicated
//! in the same transaction as the job), the admin API, health and Prometheus metrics.

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

pub mod admin;
pub mod app;
pub mod commit;
pub mod crypto;
pub mod db;
pub mod error;
pub mod ingress;
pub mod openapi;
pub mod signature;
pub mod stores;
pub mod telemetry;
