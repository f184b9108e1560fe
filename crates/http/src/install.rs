//! The install flow's two routes, open to the internet (they carry no token: the merchant's
//! browser follows them): `GET /oauth/shopify/install?shop=…` sends the merchant to the store's
//! consent page with a single-use state; `GET /oauth/shopify/callback` checks the signed query
//! and stores the tokens (see `ferry_sync::install`). Any failed check answers 400 with the
//! reason and stores nothing.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use ferry_connect::ConnectError;
use ferry_sync::{Engine, SyncError};
use serde::Deserialize;

use crate::error::ServerError;
use crate::extract::Query;

/// The longest callback query read (Shopify's is a few hundred bytes).
const MAX_QUERY: usize = 4096;
const MAX_PAIRS: usize = 16;

type Table = (Router<Engine>, &'static [(&'static str, &'static str)]);

fn table() -> Table {
    crate::api_routes! {
        GET "/oauth/shopify/install" => install,
        GET "/oauth/shopify/callback" => callback,
    }
}

/// Routes of any state: the engine is their own.
pub fn routes<S: Clone + Send + Sync + 'static>(engine: Engine) -> Router<S> {
    table().0.with_state(engine)
}

/// The install routes' (method, path) pairs.
pub fn operations() -> &'static [(&'static str, &'static str)] {
    table().1
}

#[derive(Deserialize)]
struct InstallQuery {
    shop: String,
}

fn refused(e: SyncError) -> ServerError {
    match e {
        SyncError::Connect(ConnectError::Refused { code, .. }) => {
            ServerError::BadRequest(format!("the store refused the authorization code ({code})"))
        }
        other => other.into(),
    }
}

async fn install(
    State(e): State<Engine>,
    Query(q): Query<InstallQuery>,
) -> Result<Response, ServerError> {
    let url = e.install_url(&q.shop).await.map_err(refused)?;
    Ok(Redirect::to(&url).into_response())
}

async fn callback(State(e): State<Engine>, RawQuery(q): RawQuery) -> Result<Response, ServerError> {
    let q = q.unwrap_or_default();
    if q.len() > MAX_QUERY {
        return Err(ServerError::BadRequest(
            "the callback's query is too long".into(),
        ));
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .take(MAX_PAIRS + 1)
        .collect();
    if pairs.len() > MAX_PAIRS {
        return Err(ServerError::BadRequest(
            "the callback has too many parameters".into(),
        ));
    }
    let done = e.install_finish(&pairs).await.map_err(refused)?;
    let missing = if done.missing_scopes.is_empty() {
        String::new()
    } else {
        format!(
            "<p>Not granted, and needed: {}. Grant them in the app's configuration and install again.</p>",
            done.missing_scopes.join(", ")
        )
    };
    // The store name is [A-Za-z0-9_-]: nothing to escape.
    Ok(Html(format!(
        "<!doctype html><meta charset=utf-8><title>ferry</title><h1>{} is connected</h1><p>ferry subscribes its webhooks now (job {}); you can close this page.</p>{missing}",
        done.store, done.job
    ))
    .into_response())
}
