//! The admin API under `/api`, behind bearer tokens from the config (compared in constant time):
//! stores (secrets are write-only), jobs, queues and webhook deliveries, each list paginated by
//! a keyset cursor (`after`, `limit`; the answer's `next` is the next page's `after`).

use std::sync::Arc;

use axum::extract::{Request, State};

use crate::extract::{Page, Path, Query, page_limit};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use ferry_queue::{Cancelled, JobFilter, JobState};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::{self, Caller, Role};
use crate::app::AppState;
use crate::error::{Body, ServerError};
use ferry_sync::webhooks::{WebhookScheme, parse_cursor};

type Table = (
    Router<Arc<AppState>>,
    &'static [(&'static str, &'static str)],
);

fn table() -> Table {
    crate::api_routes! {
        GET "/api/openapi.json" => crate::openapi::document,
        GET "/api/stores" => list_stores,
        POST "/api/stores" => create_store,
        GET "/api/stores/{name}" => get_store,
        POST "/api/stores/{name}/rotate" => rotate_store,
        GET "/api/jobs" => list_jobs,
        GET "/api/jobs/{id}" => get_job,
        POST "/api/jobs/{id}/cancel" => cancel_job,
        POST "/api/jobs/{id}/replay" => replay_job,
        POST "/api/dead/replay" => replay_dead,
        GET "/api/queues" => list_queues,
        POST "/api/queues/{queue}/pause" => pause_queue,
        POST "/api/queues/{queue}/resume" => resume_queue,
        GET "/api/breakers" => list_breakers,
        GET "/api/deliveries" => list_deliveries,
        POST "/api/deliveries/{store}/{delivery}/replay" => replay_delivery,
        GET "/api/tokens" => list_tokens,
        POST "/api/tokens" => add_token,
        DELETE "/api/tokens/{name}" => revoke_token,
        GET "/api/actions" => list_actions,
    }
}

pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    table()
        .0
        .route_layer(axum::middleware::from_fn_with_state(state, require_token))
}

/// The admin API's (method, path) pairs.
pub fn operations() -> &'static [(&'static str, &'static str)] {
    table().1
}

/// Puts routes of another part (the sync engine's) behind the admin API's bearer tokens.
pub fn protect(extra: Router<Arc<AppState>>, state: Arc<AppState>) -> Router<Arc<AppState>> {
    if !extra.has_routes() {
        return extra;
    }
    extra.route_layer(axum::middleware::from_fn_with_state(state, require_token))
}

/// Who is calling (401 without a known token), whether their role reaches this route (403
/// naming the role that would), and a record of every call that changes something.
async fn require_token(State(app): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let caller = match presented {
        Some(t) => match app.access.identify(&t).await {
            Ok(c) => c,
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    let Some(caller) = caller else {
        metrics::counter!("ferry_admin_auth_failures_total").increment(1);
        let body = json!({"error": {"code": "unauthorized", "message": "a valid bearer token is required"}});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    };
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    if let Err(needed) = access::permits(caller.role, &method, &route) {
        return ServerError::Forbidden(needed).into_response();
    }
    let path = req.uri().path().to_owned();
    let request_id = crate::telemetry::request_id(req.headers());
    req.extensions_mut().insert(caller.clone());
    let response = next.run(req).await;
    if method != "GET" {
        let status = response.status().as_u16();
        if let Err(e) = app
            .access
            .record(&caller, &method, &path, status, &request_id)
            .await
        {
            tracing::error!(error = %e, "the action was not recorded");
        }
    }
    response
}

// ---- stores ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStore {
    name: String,
    platform: String,
    secret: String,
}

async fn create_store(
    State(app): State<Arc<AppState>>,
    body: Body,
) -> Result<Response, ServerError> {
    let n: NewStore = body.json()?;
    let platform = WebhookScheme::parse(&n.platform)
        .ok_or_else(|| ServerError::BadRequest(format!("unknown platform {:?}", n.platform)))?;
    if app.stores.get(&n.name).await?.is_some() {
        return Err(ServerError::Conflict(format!(
            "store {:?} exists; rotate its secret instead",
            n.name
        )));
    }
    app.stores.put(&n.name, platform, &[n.secret]).await?;
    Ok((StatusCode::CREATED, Json(store_view(&app, &n.name).await?)).into_response())
}

async fn store_view(app: &AppState, name: &str) -> Result<Value, ServerError> {
    let s = app
        .stores
        .get(name)
        .await?
        .ok_or_else(|| ServerError::UnknownStore(name.to_owned()))?;
    // Secrets are never returned, not even in part: how many are active is what an operator needs.
    Ok(
        json!({"name": s.name, "platform": s.platform, "active_secrets": s.secrets.len(),
              "webhook_path": format!("/webhooks/{}/{}", s.platform.as_str(), s.name)}),
    )
}

async fn get_store(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ServerError> {
    Ok(Json(store_view(&app, &name).await?))
}

async fn list_stores(
    State(app): State<Arc<AppState>>,
    Query(p): Query<Page>,
) -> Result<Json<Value>, ServerError> {
    let limit = p.limit()?;
    let names = app.stores.names(p.after.as_deref(), limit).await?;
    let mut items = Vec::with_capacity(names.len());
    for n in &names {
        items.push(store_view(&app, n).await?);
    }
    let next = (names.len() as u32 == limit)
        .then(|| names.last().cloned())
        .flatten();
    Ok(Json(json!({"items": items, "next": next})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotation {
    secret: String,
    /// Older secrets still accepted (default 1: the previous one, while senders switch).
    #[serde(default, deserialize_with = "ferry_sync::whole::opt_i64")]
    keep: Option<i64>,
}

async fn rotate_store(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<Value>, ServerError> {
    let r: Rotation = body.json()?;
    let keep = r.keep.unwrap_or(1);
    if !(0..=10).contains(&keep) {
        return Err(ServerError::BadRequest(
            "keep is 0 to 10 older secrets".into(),
        ));
    }
    app.stores.rotate(&name, &r.secret, keep as usize).await?;
    Ok(Json(store_view(&app, &name).await?))
}

// ---- jobs and queues -------------------------------------------------------------------

#[derive(Deserialize)]
struct JobQuery {
    queue: Option<String>,
    state: Option<String>,
    kind: Option<String>,
    group: Option<String>,
    after: Option<String>,
    limit: Option<i64>,
}

fn job_id(s: &str) -> Result<uuid::Uuid, ServerError> {
    s.parse()
        .map_err(|_| ServerError::BadRequest(format!("{s:?} is not a job id")))
}

async fn list_jobs(
    State(app): State<Arc<AppState>>,
    Query(q): Query<JobQuery>,
) -> Result<Json<Value>, ServerError> {
    let state = match q.state.as_deref() {
        Some(s) => Some(
            JobState::parse(s)
                .ok_or_else(|| ServerError::BadRequest(format!("unknown state {s:?}")))?,
        ),
        None => None,
    };
    let limit = page_limit(q.limit)?;
    let filter = JobFilter {
        queue: q.queue,
        state,
        kind: q.kind,
        group: q.group,
        after: q.after.as_deref().map(job_id).transpose()?,
        limit,
    };
    let jobs = app.queue.list(&filter).await?;
    let next = (jobs.len() as u32 == limit)
        .then(|| jobs.last().map(|j| j.id.to_string()))
        .flatten();
    Ok(Json(json!({"items": jobs, "next": next})))
}

async fn get_job(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ServerError> {
    let job = app
        .queue
        .get(job_id(&id)?)
        .await?
        .ok_or_else(|| ServerError::NotFound(format!("job {id}")))?;
    Ok(Json(json!(job)))
}

async fn cancel_job(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ServerError> {
    let outcome = match app.queue.cancel(job_id(&id)?).await? {
        Cancelled::Cancelled => json!({"outcome": "cancelled"}),
        Cancelled::Requested => json!({"outcome": "cancel_requested"}),
        Cancelled::AlreadyFinished(s) => json!({"outcome": "already_finished", "state": s}),
    };
    Ok(Json(outcome))
}

async fn replay_job(
    State(app): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ServerError> {
    let e = app.queue.replay(job_id(&id)?).await?;
    Ok(Json(json!({"job_id": e.id})))
}

/// The most dead jobs one call replays (the dashboard's group and window replays too).
pub const REPLAY_BATCH: i64 = 1000;

/// Which dead jobs to replay: all of those matching every field given.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadReplay {
    queue: Option<String>,
    /// The store (the job's group).
    group: Option<String>,
    /// The error's first 120 characters, as the dead-letter groups show it.
    error: Option<String>,
    /// Died at or after (epoch ms).
    #[serde(default, deserialize_with = "ferry_sync::whole::opt_i64")]
    from_ms: Option<i64>,
    /// Died at or before (epoch ms).
    #[serde(default, deserialize_with = "ferry_sync::whole::opt_i64")]
    to_ms: Option<i64>,
    /// At most this many (1 to 1,000; 1,000 when absent).
    #[serde(default, deserialize_with = "ferry_sync::whole::opt_i64")]
    limit: Option<i64>,
}

async fn replay_dead(
    State(app): State<Arc<AppState>>,
    b: Body,
) -> Result<Json<Value>, ServerError> {
    let r: DeadReplay = if b.0.is_empty() {
        DeadReplay {
            queue: None,
            group: None,
            error: None,
            from_ms: None,
            to_ms: None,
            limit: None,
        }
    } else {
        b.json()?
    };
    let limit = r.limit.unwrap_or(REPLAY_BATCH);
    if !(1..=REPLAY_BATCH).contains(&limit) {
        return Err(ServerError::BadRequest(format!(
            "limit must be from 1 to {REPLAY_BATCH}"
        )));
    }
    let m = ferry_queue::DeadMatch {
        queue: r.queue,
        group: r.group,
        error: r.error,
        from_ms: r.from_ms.unwrap_or(0),
        to_ms: r.to_ms.unwrap_or(i64::MAX),
    };
    // A window that ends before it starts matches nothing: 0 replayed.
    let n = app.queue.replay_dead(&m, limit).await?;
    Ok(Json(json!({"replayed": n})))
}

async fn list_queues(State(app): State<Arc<AppState>>) -> Result<Json<Value>, ServerError> {
    Ok(Json(json!({"items": app.queue.stats_all().await?})))
}

async fn pause_queue(
    State(app): State<Arc<AppState>>,
    Path(q): Path<String>,
) -> Result<Json<Value>, ServerError> {
    app.queue.pause(&q).await?;
    Ok(Json(json!({"queue": q, "paused": true})))
}

async fn resume_queue(
    State(app): State<Arc<AppState>>,
    Path(q): Path<String>,
) -> Result<Json<Value>, ServerError> {
    app.queue.resume(&q).await?;
    Ok(Json(json!({"queue": q, "paused": false})))
}

/// Every store's circuit breaker: closed, open (until when) or half-open.
async fn list_breakers(State(app): State<Arc<AppState>>) -> Result<Json<Value>, ServerError> {
    let all = app
        .breakers
        .all()
        .await
        .map_err(|e| ServerError::Internal(e.to_string()))?;
    Ok(Json(json!({"items": all})))
}

// ---- webhook deliveries ----------------------------------------------------------------

#[derive(Deserialize)]
struct DeliveryQuery {
    store: Option<String>,
    /// `received_ms:store:delivery_id` of the last item of the previous page.
    after: Option<String>,
    limit: Option<i64>,
}

async fn list_deliveries(
    State(app): State<Arc<AppState>>,
    Query(q): Query<DeliveryQuery>,
) -> Result<Json<Value>, ServerError> {
    let limit = page_limit(q.limit)?;
    let after = match q.after.as_deref() {
        None => None,
        Some(c) => Some(
            parse_cursor(c)
                .ok_or_else(|| ServerError::BadRequest(format!("invalid cursor {c:?}")))?,
        ),
    };
    let rows = app
        .deliveries
        .page(q.store.as_deref(), after, limit)
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    for d in &rows {
        // The outcome is the state of the job the delivery became.
        let state = match d.job_id.parse::<uuid::Uuid>() {
            Ok(id) => app.queue.get(id).await?.map(|j| j.state),
            Err(_) => None,
        };
        items.push(json!({"store": d.store, "delivery_id": d.delivery_id,
            "platform": d.platform, "topic": d.topic, "job_id": d.job_id,
            "received_ms": d.received_ms, "outcome": state}));
    }
    let next = (rows.len() as u32 == limit)
        .then(|| rows.last().map(|r| r.cursor()))
        .flatten();
    Ok(Json(json!({"items": items, "next": next})))
}

async fn replay_delivery(
    State(app): State<Arc<AppState>>,
    Path((store, delivery)): Path<(String, String)>,
) -> Result<Json<Value>, ServerError> {
    let job = app
        .deliveries
        .job_of(&store, &delivery)
        .await?
        .ok_or_else(|| ServerError::NotFound(format!("delivery {delivery} of {store}")))?;
    let e = app.queue.replay(job_id(&job)?).await?;
    Ok(Json(json!({"delivery_id": delivery, "job_id": e.id})))
}

// ---- tokens and actions -----------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewToken {
    name: String,
    role: String,
    #[serde(default)]
    set_prices: bool,
}

async fn list_tokens(State(app): State<Arc<AppState>>) -> Result<Json<Value>, ServerError> {
    Ok(Json(json!({ "results": app.access.list().await? })))
}

/// Makes a token; the answer is the only time it is shown.
async fn add_token(State(app): State<Arc<AppState>>, body: Body) -> Result<Response, ServerError> {
    let t: NewToken = body.json()?;
    let role = Role::parse(&t.role).ok_or_else(|| {
        ServerError::BadRequest(format!(
            "unknown role {:?} (admin, operator, read or orders)",
            t.role
        ))
    })?;
    let token = app.access.add(&t.name, role, t.set_prices).await?;
    let body = json!({"name": t.name, "role": role, "set_prices": t.set_prices, "token": token});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn revoke_token(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Response, ServerError> {
    if app.access.revoke(&name).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ServerError::NotFound(format!("token {name:?}")))
    }
}

/// Every call that changed something, oldest first, with the token that made it.
async fn list_actions(
    State(app): State<Arc<AppState>>,
    Query(p): Query<Page>,
) -> Result<Json<Value>, ServerError> {
    let limit = i64::from(p.limit()?);
    Ok(Json(app.access.actions(p.after.as_deref(), limit).await?))
}

/// The caller, as the token check found it.
pub fn caller(req: &axum::http::Extensions) -> Option<&Caller> {
    req.get::<Caller>()
}
