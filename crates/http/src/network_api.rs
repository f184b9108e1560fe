//! The network's part of the admin API (mounted by the web tier behind its bearer tokens):
//! stores of the network (tokens and secrets write-only), rules, connecting, links, link
//! problems, the audit log, reconciliation runs.

use axum::extract::State;

use crate::extract::{Page, Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use ferry_sync::network::Role;
use ferry_sync::rules::Rules;
use ferry_sync::{Engine, SyncError};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Body, ServerError};

type Table = (Router<Engine>, &'static [(&'static str, &'static str)]);

fn table() -> Table {
    crate::api_routes! {
        GET "/api/network/stores" => list_stores,
        POST "/api/network/stores" => add_store,
        GET "/api/network/stores/{name}" => get_store,
        PUT "/api/network/stores/{name}/rules" => set_rules,
        POST "/api/network/stores/{name}/connect" => connect,
        GET "/api/network/stores/{name}/links" => links,
        GET "/api/network/stores/{name}/problems" => problems,
        GET "/api/audit" => audit,
        GET "/api/sync/runs" => runs,
        POST "/api/sync/reconcile" => reconcile,
    }
}

/// Routes of any state: the engine is their own.
pub fn routes<S: Clone + Send + Sync + 'static>(engine: Engine) -> Router<S> {
    table().0.with_state(engine)
}

/// The network routes' (method, path) pairs.
pub fn operations() -> &'static [(&'static str, &'static str)] {
    table().1
}

/// As everywhere, but an unknown network store is a plain 404 here (the caller named it).
fn err(e: SyncError) -> ServerError {
    match e {
        SyncError::UnknownStore(s) => ServerError::NotFound(format!("network store {s:?}")),
        other => other.into(),
    }
}

async fn list_stores(State(e): State<Engine>) -> Result<Json<Value>, ServerError> {
    let stores = e.network().all().await.map_err(err)?;
    Ok(Json(json!({"items": stores, "next": null})))
}

async fn get_store(
    State(e): State<Engine>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ServerError> {
    let s = e.network().store(&name).await.map_err(err)?;
    Ok(Json(json!(s)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStore {
    name: String,
    role: String,
    graphql_url: String,
    token: String,
    webhook_secret: String,
    #[serde(default)]
    rules: Option<Rules>,
}

async fn add_store(State(e): State<Engine>, b: Body) -> Result<Response, ServerError> {
    let n: NewStore = b.json()?;
    let role = Role::parse(&n.role).map_err(err)?;
    if e.network().get(&n.name).await.map_err(err)?.is_some() {
        return Err(ServerError::Conflict(format!(
            "network store {:?} exists; change its rules instead",
            n.name
        )));
    }
    e.add_store(
        &n.name,
        role,
        &n.graphql_url,
        &n.token,
        &n.webhook_secret,
        &n.rules.unwrap_or_default(),
    )
    .await
    .map_err(err)?;
    let s = e.network().store(&n.name).await.map_err(err)?;
    Ok((StatusCode::CREATED, Json(json!(s))).into_response())
}

async fn set_rules(
    State(e): State<Engine>,
    Path(name): Path<String>,
    b: Body,
) -> Result<Json<Value>, ServerError> {
    let rules: Rules = b.json()?;
    e.network().set_rules(&name, &rules).await.map_err(err)?;
    Ok(Json(json!(e.network().store(&name).await.map_err(err)?)))
}

async fn connect(
    State(e): State<Engine>,
    Path(name): Path<String>,
) -> Result<Response, ServerError> {
    let job = e.connect_store(&name).await.map_err(err)?;
    Ok((StatusCode::ACCEPTED, Json(json!({"job_id": job}))).into_response())
}

async fn links(
    State(e): State<Engine>,
    Path(name): Path<String>,
    Query(p): Query<Page>,
) -> Result<Json<Value>, ServerError> {
    let limit = i64::from(p.limit()?);
    e.network().store(&name).await.map_err(err)?;
    let items = e
        .network()
        .links(&name, p.after.as_deref().unwrap_or(""), limit)
        .await
        .map_err(err)?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|l| l.parent_product.clone()))
        .flatten();
    Ok(Json(json!({"items": items, "next": next})))
}

async fn problems(
    State(e): State<Engine>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ServerError> {
    e.network().store(&name).await.map_err(err)?;
    let items: Vec<Value> = e
        .link_problems(&name)
        .await
        .map_err(err)?
        .into_iter()
        .map(|(product, sku, reason)| json!({"parent_product": product, "sku": sku, "reason": reason}))
        .collect();
    Ok(Json(json!({"items": items})))
}

async fn audit(State(e): State<Engine>, Query(p): Query<Page>) -> Result<Json<Value>, ServerError> {
    let limit = i64::from(p.limit()?);
    let items = e
        .network()
        .audit_log(p.store.as_deref(), p.after.as_deref().unwrap_or(""), limit)
        .await
        .map_err(err)?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|a| a.id.clone()))
        .flatten();
    Ok(Json(json!({"items": items, "next": next})))
}

async fn runs(State(e): State<Engine>, Query(p): Query<Page>) -> Result<Json<Value>, ServerError> {
    let items = e.runs(i64::from(p.limit()?)).await.map_err(err)?;
    Ok(Json(json!({"items": items})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reconcile {
    child: Option<String>,
    #[serde(default)]
    full: bool,
}

async fn reconcile(State(e): State<Engine>, b: Body) -> Result<Response, ServerError> {
    let r: Reconcile = if b.0.is_empty() {
        Reconcile {
            child: None,
            full: false,
        }
    } else {
        b.json()?
    };
    let job = e
        .start_reconcile(r.child.as_deref(), r.full)
        .await
        .map_err(err)?;
    Ok((StatusCode::ACCEPTED, Json(json!({"job_id": job}))).into_response())
}
