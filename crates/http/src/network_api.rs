//! The network's part of the admin API (mounted by the web tier behind its bearer tokens):
//! stores of the network (tokens and secrets write-only), rules, connecting, links, link
//! problems, the audit log, reconciliation runs.

use axum::extract::State;

use crate::extract::{Page, Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use ferry_sync::credentials::{AppRef, Kind};
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
        GET "/api/apps" => list_apps,
        POST "/api/apps" => put_app,
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
    let mut v = json!(s);
    // How its token is obtained and where that stands (never the token).
    v["access"] = json!(e.access_view(&name).await.map_err(err)?);
    Ok(Json(v))
}

/// A store with a legacy app's token (`graphql_url`, `token`, `webhook_secret`), or one reached
/// through an app (`shop_domain`, `credentials`, and `app` or `client_id` with `client_secret`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewStore {
    name: String,
    role: String,
    graphql_url: Option<String>,
    token: Option<String>,
    webhook_secret: Option<String>,
    shop_domain: Option<String>,
    credentials: Option<String>,
    app: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    #[serde(default)]
    rules: Option<Rules>,
}

fn bad(m: &str) -> ServerError {
    ServerError::BadRequest(m.into())
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
    let rules = n.rules.unwrap_or_default();
    match (n.graphql_url, n.shop_domain) {
        (Some(url), None) => {
            let app_fields = n.credentials.is_some()
                || n.app.is_some()
                || n.client_id.is_some()
                || n.client_secret.is_some();
            if app_fields {
                return Err(bad(
                    "a store with graphql_url takes token and webhook_secret, not an app",
                ));
            }
            let (Some(token), Some(secret)) = (n.token, n.webhook_secret) else {
                return Err(bad(
                    "a store with graphql_url needs token and webhook_secret",
                ));
            };
            e.add_store(&n.name, role, &url, &token, &secret, &rules)
                .await
                .map_err(err)?;
        }
        (None, Some(domain)) => {
            if n.token.is_some() || n.webhook_secret.is_some() {
                return Err(bad(
                    "a store reached through an app takes no token or webhook_secret",
                ));
            }
            let kind = match n.credentials.as_deref() {
                Some("client_credentials") => Kind::ClientCredentials,
                Some("authorization_code") => Kind::AuthorizationCode,
                _ => {
                    return Err(bad(
                        "credentials is client_credentials or authorization_code",
                    ));
                }
            };
            let app = match (n.app, n.client_id, n.client_secret) {
                (Some(a), None, None) => AppRef::Named(a),
                (None, Some(client_id), Some(client_secret)) => AppRef::Own {
                    client_id,
                    client_secret,
                },
                _ => return Err(bad("give app, or client_id with client_secret")),
            };
            e.add_app_store(&n.name, role, &domain, kind, &app, &rules)
                .await
                .map_err(err)?;
        }
        _ => {
            return Err(bad(
                "give graphql_url (a token) or shop_domain (an app), not both",
            ));
        }
    }
    let s = e.network().store(&n.name).await.map_err(err)?;
    Ok((StatusCode::CREATED, Json(json!(s))).into_response())
}

async fn list_apps(State(e): State<Engine>) -> Result<Json<Value>, ServerError> {
    Ok(Json(
        json!({"items": e.network().apps().await.map_err(err)?}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewApp {
    name: String,
    client_id: String,
    client_secret: String,
    scopes: Option<String>,
}

/// Registers (or replaces) an app; its secret is write-only.
async fn put_app(State(e): State<Engine>, b: Body) -> Result<Response, ServerError> {
    let a: NewApp = b.json()?;
    let scopes = a
        .scopes
        .unwrap_or_else(|| ferry_sync::credentials::NEEDED_SCOPES.join(","));
    e.network()
        .put_app(&a.name, &a.client_id, &a.client_secret, &scopes)
        .await
        .map_err(err)?;
    let missing = ferry_sync::credentials::missing_scopes(&scopes);
    let body = json!({"name": a.name, "client_id": a.client_id, "scopes": scopes,
                      "missing_scopes": missing});
    Ok((StatusCode::CREATED, Json(body)).into_response())
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
