//! The Admin GraphQL API of a store (version 2026-04), at
//! `POST /stores/{store}/admin/api/2026-04/graphql.json`: a real GraphQL server (apollo-compiler
//! parses and validates against `schema.graphql`, then executes with our resolvers), metered
//! like Shopify's: the requested cost is charged up front from a leaky bucket, the difference to
//! the actual cost refunded, and `extensions.cost` reported on every response.

mod cost;
mod resolve;
mod search;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use apollo_compiler::executable::{ExecutableDocument, Selection};
use apollo_compiler::resolvers::Execution;
use apollo_compiler::validation::Valid;
use apollo_compiler::{Schema, ast};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

pub(crate) use resolve::IdemEntry;

use crate::error::MockError;
use crate::faults::Fault;
use crate::platform::Platform;

pub const API_VERSION: &str = "2026-04";
/// The most one query may cost, on every plan.
pub const MAX_QUERY_COST: u64 = 1000;
/// How long an idempotency key is remembered.
const IDEMPOTENCY_RETENTION_MS: i64 = 24 * 3600 * 1000;

const SDL: &str = include_str!("schema.graphql");

pub(crate) static SCHEMA: LazyLock<Valid<Schema>> = LazyLock::new(|| {
    // The schema is part of this crate; a test checks that it validates.
    Schema::parse_and_validate(SDL, "schema.graphql")
        .unwrap_or_else(|e| panic!("the mock's GraphQL schema is invalid: {}", e.errors))
});

pub(crate) fn routes() -> Router<Arc<Platform>> {
    Router::new().route(
        "/stores/{store}/admin/api/{version}/graphql.json",
        post(handle),
    )
}

#[derive(Deserialize)]
struct Request {
    query: String,
    #[serde(default)]
    variables: Option<Map<String, Value>>,
    #[serde(default, rename = "operationName")]
    operation_name: Option<String>,
}

/// The bucket as `extensions.cost.throttleStatus` reports it.
fn throttle_status(size: f64, level: f64, restore: f64) -> Value {
    json!({
        "maximumAvailable": size,
        "currentlyAvailable": (size - level).floor().max(0.0),
        "restoreRate": restore,
    })
}

fn graphql_response(errors: Vec<Value>, data: Option<Value>, cost: Value) -> Response {
    let mut body = Map::new();
    if !errors.is_empty() {
        body.insert("errors".into(), Value::Array(errors));
    }
    if let Some(d) = data {
        body.insert("data".into(), d);
    }
    body.insert("extensions".into(), json!({ "cost": cost }));
    (StatusCode::OK, Json(Value::Object(body))).into_response()
}

async fn handle(
    State(p): State<Arc<Platform>>,
    Path((store, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, MockError> {
    let caller = p.authorize(&store, crate::platform::presented_token(&headers))?;
    p.count(&store, |c| {
        c.requests += 1;
        c.graphql_requests += 1;
    });
    if version != API_VERSION {
        return Err(MockError::NotFound(format!(
            "API version {version} (this platform serves {API_VERSION})"
        )));
    }
    let req: Request = serde_json::from_slice(&body).map_err(|e| {
        MockError::BadRequest(format!("the body must be JSON with a query string: {e}"))
    })?;
    p.graphql(&store, req, caller).await
}

/// Idempotency keys of the root fields, by response key: the `@idempotent(key:)` argument,
/// a literal or a variable.
fn idempotency_keys(
    doc: &ExecutableDocument,
    op: &apollo_compiler::executable::Operation,
    vars: &Map<String, Value>,
) -> HashMap<String, String> {
    let mut keys = HashMap::new();
    for sel in &op.selection_set.selections {
        let Selection::Field(f) = sel else { continue };
        let Some(d) = f.directives.get("idempotent") else {
            continue;
        };
        let key = match d.specified_argument_by_name("key").map(|v| v.as_ref()) {
            Some(ast::Value::String(s)) => Some(s.clone()),
            Some(ast::Value::Variable(v)) => vars
                .get(v.as_str())
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        };
        if let Some(k) = key {
            keys.insert(f.response_key().to_string(), k);
        }
    }
    let _ = doc;
    keys
}

impl Platform {
    async fn graphql(
        &self,
        store: &str,
        req: Request,
        caller: crate::apps::Caller,
    ) -> Result<Response, MockError> {
        let schema: &Valid<Schema> = &SCHEMA;
        let status = |p: &Platform| -> Result<Value, MockError> {
            let now = p.now_ms();
            let mut stores = p.lock();
            let s = crate::platform::store_mut(&mut stores, store)?;
            let b = &mut s.gql_bucket;
            Ok(throttle_status(b.size, b.level(now), b.leak_per_s))
        };
        let free = |p: &Platform| -> Result<Value, MockError> {
            Ok(
                json!({ "requestedQueryCost": 0, "actualQueryCost": 0, "throttleStatus": status(p)? }),
            )
        };
        let doc = match ExecutableDocument::parse_and_validate(schema, &req.query, "query.graphql")
        {
            Ok(doc) => doc,
            Err(e) => {
                let errors = e
                    .errors
                    .iter()
                    .map(|d| serde_json::to_value(d.to_json()).unwrap_or_default())
                    .collect();
                return Ok(graphql_response(errors, None, free(self)?));
            }
        };
        let op = match doc.operations.get(req.operation_name.as_deref()) {
            Ok(op) => op,
            Err(e) => {
                let error =
                    serde_json::to_value(e.to_graphql_error(&doc.sources)).unwrap_or_default();
                return Ok(graphql_response(vec![error], None, free(self)?));
            }
        };
        let raw_vars = req.variables.unwrap_or_default();
        let bytes_vars: apollo_compiler::response::JsonMap =
            match apollo_compiler::response::JsonValue::from(Value::Object(raw_vars.clone())) {
                apollo_compiler::response::JsonValue::Object(m) => m,
                _ => Default::default(),
            };
        let vars = match apollo_compiler::request::coerce_variable_values(schema, op, &bytes_vars) {
            Ok(v) => v,
            Err(e) => {
                let error =
                    serde_json::to_value(e.to_graphql_error(&doc.sources)).unwrap_or_default();
                return Ok(graphql_response(vec![error], None, free(self)?));
            }
        };
        let mutation = op.operation_type.is_mutation();
        let (latency, fault) = self.draw_fault(store, mutation)?;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let applied_then_fail = match fault {
            Fault::None => false,
            Fault::Error5xx => return Err(MockError::Unavailable),
            Fault::Throttle { retry_after_s } => {
                self.count(store, |c| c.http_429 += 1);
                return Err(MockError::Throttled { retry_after_s });
            }
            Fault::Hang => std::future::pending().await,
            Fault::AppliedThen5xx => true,
        };
        let costing = cost::Costing {
            schema,
            doc: &doc,
            vars: &raw_vars,
        };
        let requested = costing.requested(op);
        if requested > MAX_QUERY_COST {
            self.count(store, |c| c.max_cost_exceeded += 1);
            let error = json!({
                "message": format!("Query cost is {requested}, which exceeds the single query max cost limit ({MAX_QUERY_COST}).\n\nTo query larger amounts of data with fewer limits, bulk operations should be used instead."),
                "extensions": { "code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": MAX_QUERY_COST },
            });
            let cost = json!({ "requestedQueryCost": requested, "actualQueryCost": null, "throttleStatus": status(self)? });
            return Ok(graphql_response(vec![error], None, cost));
        }
        let keys = idempotency_keys(&doc, op, &raw_vars);
        let request_id = self.next_request_id();
        // Charge the requested cost up front; mark idempotency keys in flight.
        let mut concurrent = std::collections::HashSet::new();
        let mut owns_keys = false;
        {
            let now = self.now_ms();
            let mut stores = self.lock();
            let s = crate::platform::store_mut(&mut stores, store)?;
            if s.gql_bucket.take(requested as f64, now).is_err() {
                s.counters.throttled += 1;
                let b = &mut s.gql_bucket;
                let cost = json!({
                    "requestedQueryCost": requested,
                    "actualQueryCost": null,
                    "throttleStatus": throttle_status(b.size, b.level(now), b.leak_per_s),
                });
                let error = json!({
                    "message": "Throttled",
                    "extensions": { "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits" },
                });
                return Ok(graphql_response(vec![error], None, cost));
            }
            s.gql_idem.retain(|_, e| match e {
                IdemEntry::Done { at_ms, .. } => now - *at_ms < IDEMPOTENCY_RETENTION_MS,
                IdemEntry::InFlight { .. } => true,
            });
            for k in keys.values() {
                match s.gql_idem.get(k) {
                    Some(IdemEntry::InFlight { .. }) => {
                        concurrent.insert(k.clone());
                    }
                    Some(IdemEntry::Done { .. }) => {}
                    None => {
                        s.gql_idem.insert(
                            k.clone(),
                            IdemEntry::InFlight {
                                request: request_id,
                            },
                        );
                        owns_keys = true;
                    }
                }
            }
        }
        if owns_keys {
            self.hold_point().await;
        }
        let subscriptions = self.subscriptions(store);
        let scopes = self.granted_scopes(store, &caller);
        let (response, events, new_subs, warnings, throttle, actual) = {
            let now = self.now_ms();
            let mut stores = self.lock();
            let owned = stores
                .remove(store)
                .ok_or_else(|| MockError::UnknownStore(store.to_owned()))?;
            let ctx = resolve::Ctx {
                store: RefCell::new(owned),
                now,
                request: request_id,
                idem_keys: keys,
                concurrent_keys: concurrent,
                subscriptions,
                scopes,
                new_subscriptions: RefCell::new(Vec::new()),
                warnings: RefCell::new(Vec::new()),
                base_url: self.base_url(),
            };
            let response = execute(&doc, op, &vars, &ctx);
            let resolve::Ctx {
                store: owned,
                new_subscriptions,
                warnings,
                ..
            } = ctx;
            let mut owned = owned.into_inner();
            let data = response.get("data").cloned().unwrap_or(Value::Null);
            let actual = costing.actual(op, &data).min(requested);
            owned.gql_bucket.refund((requested - actual) as f64, now);
            owned.counters.points_spent += actual;
            owned.gql_idem.retain(
                |_, e| !matches!(e, IdemEntry::InFlight { request } if *request == request_id),
            );
            let events = std::mem::take(&mut owned.catalog.events);
            let b = &mut owned.gql_bucket;
            let throttle = throttle_status(b.size, b.level(now), b.leak_per_s);
            stores.insert(store.to_owned(), owned);
            (
                response,
                events,
                new_subscriptions.into_inner(),
                warnings.into_inner(),
                throttle,
                actual,
            )
        };
        for mut s in new_subs {
            if let crate::apps::Caller::App { client_secret, .. } = &caller {
                s.secret = Some(client_secret.clone());
            }
            self.add_subscription(store, s);
        }
        for (topic, payload) in events {
            self.emit(store, topic, &payload)?;
        }
        if applied_then_fail {
            return Err(MockError::Internal);
        }
        let mut body = match response {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let mut extensions = json!({
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": actual,
                "throttleStatus": throttle,
            }
        });
        if !warnings.is_empty() {
            extensions["search"] = json!(
                warnings
                    .iter()
                    .map(|w| json!({ "path": [], "query": "", "warnings": [{ "message": w }] }))
                    .collect::<Vec<_>>()
            );
        }
        body.insert("extensions".into(), extensions);
        Ok((StatusCode::OK, Json(Value::Object(body))).into_response())
    }
}

/// Executes an operation against the store in `ctx`: the whole response (`data`, `errors`).
fn execute(
    doc: &Valid<ExecutableDocument>,
    op: &apollo_compiler::Node<apollo_compiler::executable::Operation>,
    vars: &Valid<apollo_compiler::response::JsonMap>,
    ctx: &resolve::Ctx,
) -> Value {
    let root = if op.operation_type.is_mutation() {
        resolve::Obj::mutation(ctx)
    } else {
        resolve::Obj::query(ctx)
    };
    let executed = Execution::new(&SCHEMA, doc)
        .operation(op)
        .coerced_variable_values(vars)
        .execute_sync(&root);
    match executed {
        Ok(r) => serde_json::to_value(&r).unwrap_or_default(),
        Err(e) => json!({ "errors": [e.to_graphql_error(&doc.sources)] }),
    }
}

impl Platform {
    /// Runs an operation as the platform itself does for a bulk operation: no cost, no
    /// faults, with the starting caller's scopes. Webhooks of what it wrote are sent.
    pub(crate) fn run_internal(
        &self,
        store: &str,
        query: &str,
        vars: Map<String, Value>,
        scopes: Vec<String>,
    ) -> Result<Value, String> {
        let schema: &Valid<Schema> = &SCHEMA;
        let doc = ExecutableDocument::parse_and_validate(schema, query, "bulk.graphql")
            .map_err(|e| e.errors.to_string())?;
        let op = doc
            .operations
            .get(None)
            .map_err(|e| e.message().to_string())?;
        let json_vars: apollo_compiler::response::JsonMap =
            match apollo_compiler::response::JsonValue::from(Value::Object(vars)) {
                apollo_compiler::response::JsonValue::Object(m) => m,
                _ => Default::default(),
            };
        let vars = apollo_compiler::request::coerce_variable_values(schema, op, &json_vars)
            .map_err(|e| e.message().to_string())?;
        let subscriptions = self.subscriptions(store);
        let (response, events) = {
            let now = self.now_ms();
            let mut stores = self.lock();
            let owned = stores
                .remove(store)
                .ok_or_else(|| format!("no store {store}"))?;
            let ctx = resolve::Ctx {
                store: RefCell::new(owned),
                now,
                request: self.next_request_id(),
                idem_keys: HashMap::new(),
                concurrent_keys: Default::default(),
                subscriptions,
                scopes,
                new_subscriptions: RefCell::new(Vec::new()),
                warnings: RefCell::new(Vec::new()),
                base_url: self.base_url(),
            };
            let response = execute(&doc, op, &vars, &ctx);
            let mut owned = ctx.store.into_inner();
            let events = std::mem::take(&mut owned.catalog.events);
            stores.insert(store.to_owned(), owned);
            (response, events)
        };
        for (topic, payload) in events {
            let _ = self.emit(store, topic, &payload);
        }
        if let Some(errors) = response.get("errors").and_then(Value::as_array) {
            let messages: Vec<&str> = errors
                .iter()
                .filter_map(|e| e["message"].as_str())
                .collect();
            return Err(messages.join("; "));
        }
        Ok(response.get("data").cloned().unwrap_or(Value::Null))
    }

    /// A store's GraphQL bucket now: (points in use, size, restore rate per second).
    pub fn graphql_bucket(&self, store: &str) -> Result<(f64, f64, f64), MockError> {
        let now = self.now_ms();
        let mut stores = self.lock();
        let s = crate::platform::store_mut(&mut stores, store)?;
        let b = &mut s.gql_bucket;
        Ok((b.level(now), b.size, b.leak_per_s))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn schema_is_valid() {
        let s = apollo_compiler::Schema::parse_and_validate(super::SDL, "schema.graphql");
        assert!(s.is_ok(), "{:?}", s.err().map(|e| e.errors.to_string()));
    }
}
