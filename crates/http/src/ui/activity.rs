//! What came in and what ferry did with it: webhook deliveries (each with the job it became
//! and a replay), reconciliation runs (what each found and repaired), and orders taken through
//! the orders API (the saga's step, the payment, the stock each store was moved by).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::page::{action, enc, esc, page, when};
use super::session::Session;
use super::{acted, failed, message, nonblank, refused};
use crate::app::AppState;

/// Rows on a page of deliveries or orders.
const PAGE_ROWS: u32 = 50;
/// Reconciliation runs listed.
const RUN_ROWS: i64 = 100;
/// Stock writes shown per order.
const ORDER_WRITES: i64 = 20;

#[derive(Deserialize, Default)]
pub(super) struct DeliveryQuery {
    store: Option<String>,
    /// The page ends before this delivery: `received_ms:store:delivery_id`.
    before: Option<String>,
}

/// A delivery cursor, `received_ms:store:delivery_id` (a store name holds no colon).
fn delivery_cursor(v: &str) -> Option<(i64, String, String)> {
    let (ms, rest) = v.split_once(':')?;
    let (store, id) = rest.split_once(':')?;
    Some((ms.parse().ok()?, store.to_owned(), id.to_owned()))
}

pub(super) async fn deliveries(
    State(app): State<Arc<AppState>>,
    axum::Extension(s): axum::Extension<Session>,
    Query(q): Query<DeliveryQuery>,
) -> Response {
    let before = match nonblank(&q.before).map(|b| delivery_cursor(&b)) {
        Some(Some(c)) => Some(c),
        Some(None) => {
            return message(
                StatusCode::BAD_REQUEST,
                "Bad page",
                "That page cursor is not one this page made.",
            );
        }
        None => None,
    };
    let store = nonblank(&q.store);
    let list = match app
        .deliveries
        .recent(store.as_deref(), before, PAGE_ROWS)
        .await
    {
        Ok(l) => l,
        Err(e) => return failed(e),
    };
    let mut rows = String::new();
    for d in &list {
        // The outcome is the state of the job the delivery became (pruned: long done).
        let job = match d.job_id.parse::<uuid::Uuid>() {
            Ok(id) => match app.queue.get(id).await {
                Ok(j) => j,
                Err(e) => return failed(e),
            },
            Err(_) => None,
        };
        let outcome = job.as_ref().map_or("pruned", |j| j.state.as_str());
        let replay = if job.as_ref().is_some_and(|j| {
            matches!(
                j.state,
                ferry_queue::JobState::Dead
                    | ferry_queue::JobState::Cancelled
                    | ferry_queue::JobState::Expired
            )
        }) {
            action(
                &s,
                &format!(
                    "/ui/deliveries/{}/{}/replay",
                    enc(&d.store),
                    enc(&d.delivery_id)
                ),
                "Replay",
                Some("Run this delivery's job again?"),
            )
        } else {
            String::new()
        };
        rows.push_str(&format!(
            r#"<tr class="state-{outcome}"><td>{received}</td><td><a href="/ui/stores/{qstore}">{store}</a></td><td>{topic}</td><td><code>{delivery}</code></td><td><a href="/ui/jobs/{job}">{outcome}</a></td><td>{replay}</td></tr>"#,
            received = when(d.received_ms),
            qstore = enc(&d.store),
            store = esc(&d.store),
            topic = esc(&d.topic),
            delivery = esc(&d.delivery_id),
            job = enc(&d.job_id),
        ));
    }
    let keep = store
        .as_ref()
        .map(|s| format!("&amp;store={}", enc(s)))
        .unwrap_or_default();
    let next = match list.last() {
        Some(d) if list.len() as u32 == PAGE_ROWS => format!(
            r#"<p><a rel="next" href="/ui/deliveries?before={}{keep}">Older deliveries</a></p>"#,
            enc(&format!("{}:{}:{}", d.received_ms, d.store, d.delivery_id))
        ),
        _ => String::new(),
    };
    let body = format!(
        r#"<h1>Webhook deliveries</h1>
<form method="get" action="/ui/deliveries" class="filters"><label>store <input name="store" value="{store}"></label><button type="submit">Filter</button></form>
<table data-live><thead><tr><th>Received</th><th>Store</th><th>Topic</th><th>Delivery</th><th>Outcome (its job)</th><th></th></tr></thead><tbody>{rows}</tbody></table>{empty}{next}"#,
        store = esc(store.as_deref().unwrap_or("")),
        empty = super::none_yet(list.is_empty(), "No delivery yet."),
    );
    page("Deliveries", Some(&s), &body)
}

pub(super) async fn replay_delivery(
    State(app): State<Arc<AppState>>,
    axum::Extension(s): axum::Extension<Session>,
    Path((store, delivery)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = refused(&s, &body, Some("/api/deliveries/{store}/{delivery}/replay")) {
        return r;
    }
    let path = format!("/ui/deliveries/{}/{}/replay", enc(&store), enc(&delivery));
    let job = match app.deliveries.job_of(&store, &delivery).await {
        Ok(Some(j)) => j,
        Ok(None) => {
            return message(
                StatusCode::NOT_FOUND,
                "No such delivery",
                "No delivery of that store has that id.",
            );
        }
        Err(e) => return failed(e),
    };
    let outcome = match job.parse::<uuid::Uuid>() {
        Ok(id) => app
            .queue
            .replay(id)
            .await
            .map(|e| format!("/ui/jobs/{}", e.id)),
        Err(_) => Err(ferry_queue::QueueError::InvalidJob(format!(
            "the delivery's job id {job:?} is not a job id"
        ))),
    };
    acted(&app, &s, &path, &headers, outcome).await
}

pub(super) async fn runs(
    State(app): State<Arc<AppState>>,
    axum::Extension(s): axum::Extension<Session>,
) -> Response {
    let list = match app.engine.runs(RUN_ROWS).await {
        Ok(l) => l,
        Err(e) => return failed(e),
    };
    let mut rows = String::new();
    for r in &list {
        let fixed = r.created + r.updated + r.stock_fixed;
        rows.push_str(&format!(
            r#"<tr class="state-{state}"><td>{started}</td><td><a href="/ui/stores/{qchild}">{child}</a></td><td>{pass}</td><td>{state}</td><td>{checked}</td><td>{fixed}</td><td>{created}</td><td>{updated}</td><td>{stock}</td><td>{took}</td><td>{how}</td><td class="error">{error}</td></tr>"#,
            started = when(r.started_ms),
            qchild = enc(&r.child),
            child = esc(&r.child),
            pass = if r.full_pass != 0 { "full" } else { "changes" },
            state = r.state.as_str(),
            checked = r.checked,
            created = r.created,
            updated = r.updated,
            stock = r.stock_fixed,
            took = r
                .finished_ms
                .map(|f| super::page::age(f - r.started_ms))
                .unwrap_or_else(|| "running".into()),
            // A running pass shows its phase (a bulk export's object count); a finished one
            // how it read the catalogs.
            how = esc(if r.finished_ms.is_none() && !r.phase.is_empty() {
                &r.phase
            } else {
                &r.mode
            }),
            error = esc(r.error.as_deref().unwrap_or("")),
        ));
    }
    let body = format!(
        r#"<h1>Reconciliation runs</h1>
<p class="hint">Each run compares a child with the parent and repairs what drifted. Start one from a store's page.</p>
<table data-live><thead><tr><th>Started</th><th>Child</th><th>Pass</th><th>State</th><th>Checked</th><th>Drift fixed</th><th>Copied</th><th>Updated</th><th>Stock fixed</th><th>Took</th><th>Read</th><th>Error</th></tr></thead><tbody>{rows}</tbody></table>{empty}"#,
        empty = super::none_yet(list.is_empty(), "No run yet."),
    );
    page("Sync runs", Some(&s), &body)
}

/// Starts a reconciliation of one child (`full=1`: every product, not only changes).
pub(super) async fn reconcile(
    State(app): State<Arc<AppState>>,
    axum::Extension(s): axum::Extension<Session>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = refused(&s, &body, Some("/api/sync/reconcile")) {
        return r;
    }
    let full = super::form_field(&body, "full").as_deref() == Some("1");
    let path = format!("/ui/stores/{}/reconcile", enc(&name));
    match app.engine.start_reconcile(Some(&name), full).await {
        Ok(_) => acted(&app, &s, &path, &headers, Ok("/ui/runs".to_owned())).await,
        Err(e) => {
            let e = crate::error::ServerError::from(e);
            super::record(&app, &s.caller, &path, e.status(), &headers).await;
            message(e.status(), "Not started", &e.to_string())
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct OrderQuery {
    /// The page ends before this order: `created_ms:id`.
    before: Option<String>,
}

pub(super) async fn orders(
    State(app): State<Arc<AppState>>,
    axum::Extension(s): axum::Extension<Session>,
    Query(q): Query<OrderQuery>,
) -> Response {
    let before = match nonblank(&q.before).map(|b| {
        b.split_once(':')
            .and_then(|(ms, id)| Some((ms.parse::<i64>().ok()?, id.to_owned())))
    }) {
        Some(Some(c)) => Some(c),
        Some(None) => {
            return message(
                StatusCode::BAD_REQUEST,
                "Bad page",
                "That page cursor is not one this page made.",
            );
        }
        None => None,
    };
    let list = match app.orders.recent(before, i64::from(PAGE_ROWS)).await {
        Ok(l) => l,
        Err(e) => return failed(e),
    };
    let mut rows = String::new();
    for o in &list {
        let writes = match app
            .engine
            .network()
            .audit_by_cause(&o.cause, ORDER_WRITES)
            .await
        {
            Ok(w) => w,
            Err(e) => return failed(e),
        };
        let deltas = writes
            .iter()
            .map(|w| {
                format!(
                    r#"<li><a href="/ui/stores/{q}">{store}</a> {action} <code>{fields}</code></li>"#,
                    q = enc(&w.store),
                    store = esc(&w.store),
                    action = esc(&w.action),
                    fields = esc(&w.fields.to_string()),
                )
            })
            .collect::<String>();
        let items = o
            .items
            .iter()
            .map(|(sku, n)| format!("{n} × {}", esc(sku)))
            .collect::<Vec<_>>()
            .join(", ");
        let payment = match (&o.transaction_id, &o.error_code) {
            (Some(t), _) => format!("{} · <code>{}</code>", esc(&o.payment_method), esc(t)),
            (None, Some(code)) => format!("{} · refused: {}", esc(&o.payment_method), esc(code)),
            (None, None) => esc(&o.payment_method),
        };
        rows.push_str(&format!(
            r#"<tr class="state-{status}"><td>{created}</td><td><code>{id}</code></td><td>{client}</td><td>{status}</td><td>{step}</td><td>{items}</td><td>{amount}</td><td>{payment}</td><td><ul class="deltas">{deltas}</ul></td></tr>"#,
            created = when(o.created_ms),
            id = esc(&o.id),
            client = esc(&o.client),
            status = o.status.as_str(),
            step = o.step.as_str(),
            amount = esc(&ferry_sync::orders::format_amount(o.amount_cents, &o.currency)),
        ));
    }
    let next = match list.last() {
        Some(o) if list.len() as u32 == PAGE_ROWS => format!(
            r#"<p><a rel="next" href="/ui/orders?before={}">Older orders</a></p>"#,
            enc(&format!("{}:{}", o.created_ms, o.id))
        ),
        _ => String::new(),
    };
    let body = format!(
        r#"<h1>Orders</h1>
<table data-live><thead><tr><th>Created</th><th>Order</th><th>Client</th><th>Status</th><th>Step</th><th>Items</th><th>Amount</th><th>Payment</th><th>Stock moved per store</th></tr></thead><tbody>{rows}</tbody></table>{empty}{next}"#,
        empty = super::none_yet(
            list.is_empty(),
            "No order taken through the orders API yet."
        ),
    );
    page("Orders", Some(&s), &body)
}
