//! `/metrics` in Prometheus text format: HTTP requests by route and status with latency
//! histograms, webhooks by outcome (counted where they happen), and, read at each scrape, queue
//! depth and the age of the oldest ready job per queue.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::app::AppState;

/// The process's Prometheus recorder, installed once.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".into()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            )
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        // Fails only if another recorder is installed already (a test binary's own): then
        // this one renders nothing but the server still runs.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Counts every request by its route template (never the raw path: ids would explode the
/// series) and status, with its latency.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    // The request id is set by the outermost layer; everything logged while the request is
    // handled carries it (and the ingress puts it into the job the delivery becomes).
    let request_id = request_id(req.headers());
    let span =
        tracing::info_span!("request", request_id = %request_id, method = %method, route = %route);
    let started = Instant::now();
    let resp = tracing::Instrument::instrument(next.run(req), span).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("ferry_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("ferry_http_request_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    resp
}

pub async fn render(State(app): State<Arc<AppState>>) -> impl IntoResponse {
    match app.queue.stats_all().await {
        Ok(stats) => {
            for s in stats {
                for (state, n) in [
                    ("ready", s.ready),
                    ("scheduled", s.scheduled),
                    ("running", s.running),
                    ("dead", s.dead),
                ] {
                    metrics::gauge!("ferry_queue_jobs", "queue" => s.queue.clone(), "state" => state).set(n as f64);
                }
                metrics::gauge!("ferry_queue_oldest_ready_age_seconds", "queue" => s.queue.clone())
                    .set(s.oldest_ready_age_ms as f64 / 1000.0);
                metrics::gauge!("ferry_queue_paused", "queue" => s.queue.clone())
                    .set(if s.paused { 1.0 } else { 0.0 });
            }
            metrics::gauge!("ferry_database_up").set(1.0);
        }
        Err(e) => {
            tracing::warn!(error = %e, "queue stats for /metrics");
            metrics::gauge!("ferry_database_up").set(0.0);
        }
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        handle().render(),
    )
}

/// The request's id (set by the outermost layer), or nothing.
pub fn request_id(headers: &axum::http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}
