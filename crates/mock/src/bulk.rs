//! Bulk operations as Shopify runs them: `bulkOperationRunQuery` takes a query over a whole
//! connection (at most 5 connections, nested at most 2 deep), runs it in the background at a
//! set rate of objects per second, and writes the result as JSONL (one object per line,
//! nested connection nodes on their own lines with `__parentId`) to a file served at an
//! expiring `url`. Statuses `CREATED → RUNNING → COMPLETED | FAILED | CANCELED` (and `EXPIRED`
//! once the file is gone); `bulk_operations/finish` is sent when one ends. A failed operation
//! keeps what it wrote as `partialDataUrl`.
//!
//! `bulkOperationRunMutation` runs a mutation once per line of a JSONL of variables uploaded
//! through `stagedUploadsCreate`, and writes one result line per input line.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use apollo_compiler::executable::{ExecutableDocument, Selection};
use apollo_compiler::validation::Valid;
use apollo_compiler::{Name, Node, Schema, ast, name};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::platform::Platform;

/// Operations of one kind that may run at once per shop (Shopify, from 2026-01).
pub const MAX_RUNNING: usize = 5;
/// Connections a bulk query may select, and how deep they may nest.
pub const MAX_CONNECTIONS: usize = 5;
pub const MAX_NESTING: usize = 2;
/// Objects a bulk operation writes per second by default. Shopify publishes no figure (it
/// says only that an operation may run for days); reports put large exports at minutes per
/// hundred thousand products. 2,000 objects per second makes a 100,000-product export with
/// two variants and an image each (about 400,000 objects) take a little over 3 minutes.
/// The rate is per operation: operations running at once on a shop (up to 5 since 2026-01)
/// each write at it, as separate jobs on Shopify's side would; Shopify does not say whether
/// concurrent operations share a shop's throughput, so a figure that splits an export relies
/// on this.
pub const DEFAULT_ROWS_PER_S: f64 = 2_000.0;
/// How long a result file stays downloadable (Shopify: 7 days).
pub const URL_TTL_MS: i64 = 7 * 24 * 3600 * 1000;
/// Top-level objects read per step of a running query.
const CHUNK: i32 = 250;
/// Operations kept per store (older ones are forgotten with their files).
const KEEP: usize = 50;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Created,
    Running,
    Completed,
    Failed,
    Canceled,
    Expired,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Created => "CREATED",
            Status::Running => "RUNNING",
            Status::Completed => "COMPLETED",
            Status::Failed => "FAILED",
            Status::Canceled => "CANCELED",
            Status::Expired => "EXPIRED",
        }
    }

    pub(crate) fn running(self) -> bool {
        matches!(self, Status::Created | Status::Running)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Query,
    Mutation,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Query => "QUERY",
            Kind::Mutation => "MUTATION",
        }
    }
}

/// How a store's bulk operations behave (the control API sets it).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BulkSettings {
    /// Objects written per second.
    pub rows_per_s: f64,
    /// Fail (`INTERNAL_SERVER_ERROR`) once this many objects were written: a partial result.
    pub fail_after_objects: Option<u64>,
    /// How long a result URL stays valid after the operation ends.
    pub url_ttl_ms: i64,
    /// Operations of a kind that may run at once (1 gives the pre-2026 `OPERATION_IN_PROGRESS`).
    pub max_running: usize,
}

impl Default for BulkSettings {
    fn default() -> Self {
        BulkSettings {
            rows_per_s: DEFAULT_ROWS_PER_S,
            fail_after_objects: None,
            url_ttl_ms: URL_TTL_MS,
            max_running: MAX_RUNNING,
        }
    }
}

#[derive(Debug)]
pub(crate) struct BulkOp {
    pub id: u64,
    pub kind: Kind,
    pub status: Status,
    pub query: String,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub object_count: u64,
    pub root_count: u64,
    pub error_code: Option<&'static str>,
    /// The top-level connection's cursor (queries) or the next input line (mutations).
    pub cursor: Option<String>,
    pub line: usize,
    /// The staged upload a mutation reads its variables from.
    pub input: Option<PathBuf>,
    pub file: PathBuf,
    pub file_size: u64,
    /// The secret part of the result URL.
    pub token: String,
    pub scopes: Vec<String>,
}

impl Drop for BulkOp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

impl BulkOp {
    pub(crate) fn gid(&self) -> String {
        format!("gid://shopify/BulkOperation/{}", self.id)
    }

    fn expires_at(&self, ttl_ms: i64) -> Option<i64> {
        self.completed_at.map(|c| c.saturating_add(ttl_ms))
    }

    /// The status as a client sees it now (a finished operation's file expires).
    pub(crate) fn status_at(&self, now: i64, ttl_ms: i64) -> Status {
        match self.status {
            Status::Completed | Status::Failed
                if self.expires_at(ttl_ms).is_some_and(|e| now >= e) =>
            {
                Status::Expired
            }
            s => s,
        }
    }
}

/// One store's bulk operations and settings.
#[derive(Debug, Default)]
pub(crate) struct Bulk {
    pub ops: BTreeMap<u64, BulkOp>,
    pub settings: BulkSettings,
    /// Staged uploads by path: the file a mutation's variables were uploaded to.
    pub staged: BTreeMap<String, Option<PathBuf>>,
}

impl Bulk {
    pub(crate) fn running(&self, kind: Kind) -> usize {
        self.ops
            .values()
            .filter(|o| o.kind == kind && o.status.running())
            .count()
    }

    /// Starts an operation (status `CREATED`; the runner picks it up).
    pub(crate) fn start(
        &mut self,
        kind: Kind,
        query: &str,
        input: Option<PathBuf>,
        scopes: Vec<String>,
        now: i64,
        token: String,
    ) -> u64 {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let file =
            std::env::temp_dir().join(format!("ferry-mock-bulk-{}-{id}.jsonl", std::process::id()));
        self.ops.insert(
            id,
            BulkOp {
                id,
                kind,
                status: Status::Created,
                query: query.to_owned(),
                created_at: now,
                started_at: None,
                completed_at: None,
                object_count: 0,
                root_count: 0,
                error_code: None,
                cursor: None,
                line: 0,
                input,
                file,
                file_size: 0,
                token,
                scopes,
            },
        );
        while self.ops.len() > KEEP {
            let Some(oldest) = self
                .ops
                .iter()
                .find(|(_, o)| !o.status.running())
                .map(|(id, _)| *id)
            else {
                break;
            };
            self.ops.remove(&oldest);
        }
        id
    }
}

pub(crate) fn schema_error(message: impl Into<String>) -> String {
    message.into()
}

/// Checks a bulk query as Shopify does: one query operation whose root is a single connection,
/// at most 5 connections, nested at most 2 deep.
pub(crate) fn validate_query(schema: &Valid<Schema>, query: &str) -> Result<(), String> {
    let doc = ExecutableDocument::parse_and_validate(schema, query, "bulk.graphql")
        .map_err(|e| schema_error(format!("Invalid bulk query: {}", e.errors)))?;
    let op = doc
        .operations
        .get(None)
        .map_err(|_| schema_error("Bulk queries must contain exactly one operation."))?;
    if !op.operation_type.is_query() {
        return Err(schema_error(
            "Bulk queries must be queries (use bulkOperationRunMutation for mutations).",
        ));
    }
    let roots: Vec<_> = op
        .selection_set
        .selections
        .iter()
        .filter_map(|s| match s {
            Selection::Field(f) => Some(f),
            _ => None,
        })
        .collect();
    let [root] = roots.as_slice() else {
        return Err(schema_error(
            "Bulk queries must contain exactly one top-level field.",
        ));
    };
    if !root
        .definition
        .ty
        .inner_named_type()
        .ends_with("Connection")
    {
        return Err(schema_error(
            "Bulk queries must contain at least one connection.",
        ));
    }
    let mut connections = 0;
    let mut deepest = 0;
    walk(&doc, &op.selection_set, 0, &mut connections, &mut deepest);
    if connections > MAX_CONNECTIONS {
        return Err(schema_error(format!(
            "Bulk queries cannot contain more than {MAX_CONNECTIONS} connections."
        )));
    }
    if deepest > MAX_NESTING {
        return Err(schema_error(format!(
            "Bulk queries cannot contain connections with a nesting depth greater than {MAX_NESTING}."
        )));
    }
    Ok(())
}

/// Counts connections and the deepest nesting (the root connection is depth 0).
fn walk(
    doc: &ExecutableDocument,
    set: &apollo_compiler::executable::SelectionSet,
    above: usize,
    count: &mut usize,
    deepest: &mut usize,
) {
    for sel in &set.selections {
        match sel {
            Selection::Field(f) => {
                if f.definition.ty.inner_named_type().ends_with("Connection") {
                    *deepest = (*deepest).max(above);
                    *count += 1;
                    walk(doc, &f.selection_set, above + 1, count, deepest);
                } else {
                    walk(doc, &f.selection_set, above, count, deepest);
                }
            }
            Selection::InlineFragment(i) => walk(doc, &i.selection_set, above, count, deepest),
            Selection::FragmentSpread(s) => {
                if let Some(frag) = doc.fragments.get(&s.fragment_name) {
                    walk(doc, &frag.selection_set, above, count, deepest);
                }
            }
        }
    }
}

/// The response key of the page info the runner adds to the root connection (`name!` below
/// spells it too).
const PAGE_KEY: &str = "mockBulkPage";

fn arg(f: &mut ast::Field, name: &str, value: ast::Value) {
    f.arguments.retain(|a| a.name != name);
    if let Ok(n) = Name::new(name) {
        f.arguments.push(Node::new(ast::Argument {
            name: n,
            value: Node::new(value),
        }));
    }
}

fn plain_field(name: Name, alias: Option<Name>, set: Vec<ast::Selection>) -> ast::Selection {
    let field = ast::Field {
        alias,
        name,
        arguments: Vec::new(),
        directives: Default::default(),
        selection_set: set,
    };
    ast::Selection::Field(Node::new(field))
}

fn is_connection(set: &[ast::Selection]) -> bool {
    set.iter()
        .any(|s| matches!(s, ast::Selection::Field(f) if f.name == "edges" || f.name == "nodes"))
}

/// Nested connections read whole: the largest page where the query set none.
fn open_nested(set: &mut [ast::Selection]) {
    for sel in set {
        match sel {
            ast::Selection::Field(f) => {
                let f = f.make_mut();
                if is_connection(&f.selection_set) && !f.arguments.iter().any(|a| a.name == "first")
                {
                    arg(f, "first", ast::Value::from(250));
                }
                open_nested(&mut f.selection_set);
            }
            ast::Selection::InlineFragment(i) => open_nested(&mut i.make_mut().selection_set),
            ast::Selection::FragmentSpread(_) => {}
        }
    }
}

/// The bulk query as one step of its run: `first` top-level objects after `after`, with the
/// page info to go on.
pub(crate) fn step_query(query: &str, first: i32, after: Option<&str>) -> Result<String, String> {
    let mut doc = ast::Document::parse(query, "bulk.graphql").map_err(|e| e.errors.to_string())?;
    for def in &mut doc.definitions {
        match def {
            ast::Definition::OperationDefinition(op) => {
                let op = op.make_mut();
                for sel in &mut op.selection_set {
                    if let ast::Selection::Field(f) = sel {
                        let f = f.make_mut();
                        arg(f, "first", ast::Value::from(first));
                        match after {
                            Some(c) => arg(f, "after", ast::Value::String(c.to_owned())),
                            None => f.arguments.retain(|a| a.name != "after"),
                        }
                        open_nested(&mut f.selection_set);
                        f.selection_set.push(plain_field(
                            name!(pageInfo),
                            Some(name!(mockBulkPage)),
                            vec![
                                plain_field(name!(hasNextPage), None, vec![]),
                                plain_field(name!(endCursor), None, vec![]),
                            ],
                        ));
                    }
                }
            }
            ast::Definition::FragmentDefinition(frag) => {
                open_nested(&mut frag.make_mut().selection_set)
            }
            _ => {}
        }
    }
    Ok(doc.to_string())
}

fn connection_nodes(v: &Value) -> Option<Vec<Value>> {
    let o = v.as_object()?;
    if let Some(nodes) = o.get("nodes").and_then(Value::as_array) {
        return Some(nodes.clone());
    }
    o.get("edges").and_then(Value::as_array).map(|edges| {
        edges
            .iter()
            .filter_map(|e| e.get("node").cloned())
            .collect()
    })
}

/// Takes the connections out of an object (and its nested plain objects): their nodes.
fn take_connections(obj: &mut Map<String, Value>, out: &mut Vec<Value>) {
    let keys: Vec<String> = obj.keys().cloned().collect();
    for k in keys {
        let Some(v) = obj.get_mut(&k) else { continue };
        if let Some(nodes) = connection_nodes(v) {
            obj.remove(&k);
            out.extend(nodes);
        } else if let Value::Object(inner) = v {
            take_connections(inner, out);
        }
    }
}

/// A node and what hangs under it, as JSONL lines: the node first, then each nested node with
/// the `__parentId` of the node it hangs under.
pub(crate) fn flatten(node: Value, parent: Option<&str>, lines: &mut Vec<Value>) {
    let Value::Object(mut obj) = node else { return };
    let mut children = Vec::new();
    take_connections(&mut obj, &mut children);
    let id = obj.get("id").and_then(Value::as_str).map(str::to_owned);
    if let Some(p) = parent {
        obj.insert("__parentId".into(), json!(p));
    }
    lines.push(Value::Object(obj));
    for c in children {
        flatten(c, id.as_deref(), lines);
    }
}

/// Reads one step's answer: the JSONL lines, how many were top-level, and the next cursor.
pub(crate) fn step_lines(data: &Value) -> (Vec<Value>, u64, Option<String>) {
    let Some(root) = data.as_object().and_then(|o| o.values().next()) else {
        return (Vec::new(), 0, None);
    };
    let page = &root[PAGE_KEY];
    let next = (page["hasNextPage"] == true)
        .then(|| page["endCursor"].as_str().map(str::to_owned))
        .flatten();
    let nodes = connection_nodes(root).unwrap_or_default();
    let roots = nodes.len() as u64;
    let mut lines = Vec::new();
    for n in nodes {
        flatten(n, None, &mut lines);
    }
    (lines, roots, next)
}

/// Runs every store's bulk operations forward, a step at a time, as their rate allows.
pub(crate) fn spawn_runner(platform: &Arc<Platform>) {
    let weak: Weak<Platform> = Arc::downgrade(platform);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let Some(p) = weak.upgrade() else { break };
            // A step runs the executor synchronously over the store: off the async threads.
            let _ = tokio::task::spawn_blocking(move || p.bulk_tick()).await;
        }
    });
}

/// One unit of work the runner found due.
struct Due {
    store: String,
    op: u64,
    kind: Kind,
    query: String,
    cursor: Option<String>,
    line: usize,
    input: Option<PathBuf>,
    scopes: Vec<String>,
}

impl Platform {
    /// Moves every due operation one step or more (at most ~50 ms of work per call).
    pub(crate) fn bulk_tick(&self) {
        let started = std::time::Instant::now();
        loop {
            let due = self.bulk_due();
            if due.is_empty() {
                return;
            }
            for d in due {
                self.bulk_step(d);
            }
            if started.elapsed() > Duration::from_millis(50) {
                return;
            }
        }
    }

    fn bulk_due(&self) -> Vec<Due> {
        let now = self.now_ms();
        let mut stores = self.lock();
        let mut due = Vec::new();
        for (name, s) in stores.iter_mut() {
            let rate = s.bulk.settings.rows_per_s.max(0.001);
            for op in s.bulk.ops.values_mut() {
                if !op.status.running() {
                    continue;
                }
                let started = *op.started_at.get_or_insert(now);
                op.status = Status::Running;
                let allowed = rate * (now - started).max(0) as f64 / 1000.0;
                // The first step runs at once; later ones when the rate has caught up.
                if op.object_count > 0 && op.object_count as f64 >= allowed {
                    continue;
                }
                due.push(Due {
                    store: name.clone(),
                    op: op.id,
                    kind: op.kind,
                    query: op.query.clone(),
                    cursor: op.cursor.clone(),
                    line: op.line,
                    input: op.input.clone(),
                    scopes: op.scopes.clone(),
                });
            }
        }
        due
    }

    fn bulk_step(&self, d: Due) {
        let step = match d.kind {
            Kind::Query => self.bulk_query_step(&d),
            Kind::Mutation => self.bulk_mutation_step(&d),
        };
        let now = self.now_ms();
        let mut finished = None;
        {
            let mut stores = self.lock();
            let Some(s) = stores.get_mut(&d.store) else {
                return;
            };
            let fail_after = s.bulk.settings.fail_after_objects;
            let Some(op) = s.bulk.ops.get_mut(&d.op) else {
                return;
            };
            if !op.status.running() {
                // Cancelled while the step ran: what it read is not written.
                return;
            }
            match step {
                Err(message) => {
                    tracing::warn!(store = %d.store, op = d.op, %message, "bulk operation failed");
                    op.status = Status::Failed;
                    op.error_code = Some("INTERNAL_SERVER_ERROR");
                    op.completed_at = Some(now);
                }
                Ok((lines, roots, next)) => {
                    let written = append(&op.file, &lines);
                    match written {
                        Ok(n) => {
                            op.file_size += n;
                            op.object_count += lines.len() as u64;
                            op.root_count += roots;
                        }
                        Err(_) => {
                            op.status = Status::Failed;
                            op.error_code = Some("INTERNAL_SERVER_ERROR");
                            op.completed_at = Some(now);
                        }
                    }
                    if op.status.running() {
                        if fail_after.is_some_and(|f| op.object_count >= f) {
                            op.status = Status::Failed;
                            op.error_code = Some("INTERNAL_SERVER_ERROR");
                            op.completed_at = Some(now);
                        } else {
                            match next {
                                Some(Step::Cursor(c)) => op.cursor = Some(c),
                                Some(Step::Line(l)) => op.line = l,
                                None => {
                                    op.status = Status::Completed;
                                    op.completed_at = Some(now);
                                }
                            }
                        }
                    }
                }
            }
            if !op.status.running() {
                finished = Some(finish_payload(op));
            }
        }
        if let Some(payload) = finished {
            let _ = self.emit(&d.store, "bulk_operations/finish", &payload);
        }
    }

    fn bulk_query_step(&self, d: &Due) -> Result<(Vec<Value>, u64, Option<Step>), String> {
        let q = step_query(&d.query, CHUNK, d.cursor.as_deref())?;
        let data = self.run_internal(&d.store, &q, Map::new(), d.scopes.clone())?;
        let (lines, roots, next) = step_lines(&data);
        Ok((lines, roots, next.map(Step::Cursor)))
    }

    fn bulk_mutation_step(&self, d: &Due) -> Result<(Vec<Value>, u64, Option<Step>), String> {
        let Some(input) = &d.input else {
            return Err("no staged upload".into());
        };
        let text = std::fs::read_to_string(input).map_err(|e| e.to_string())?;
        let mut lines = Vec::new();
        let mut next = d.line;
        for raw in text.lines().skip(d.line).take(CHUNK as usize) {
            next += 1;
            let result = match serde_json::from_str::<Value>(raw) {
                Ok(Value::Object(vars)) => {
                    self.run_internal(&d.store, &d.query, vars, d.scopes.clone())
                }
                Ok(_) | Err(_) => Err(format!("line {next} is not a JSON object of variables")),
            };
            lines.push(match result {
                Ok(data) => json!({ "data": data, "__lineNumber": next - 1 }),
                Err(message) => {
                    json!({ "errors": [{ "message": message }], "__lineNumber": next - 1 })
                }
            });
        }
        let roots = lines.len() as u64;
        let more = text.lines().nth(next).is_some();
        Ok((lines, roots, more.then_some(Step::Line(next))))
    }

    /// Where a finished operation's result can be downloaded, if it still can.
    pub(crate) fn bulk_file(&self, token: &str) -> Option<PathBuf> {
        let now = self.now_ms();
        let stores = self.lock();
        for s in stores.values() {
            let ttl = s.bulk.settings.url_ttl_ms;
            for op in s.bulk.ops.values() {
                if op.token == token
                    && matches!(op.status_at(now, ttl), Status::Completed | Status::Failed)
                {
                    return Some(op.file.clone());
                }
            }
        }
        None
    }

    /// The bulk settings stores created from now on start with.
    pub fn set_bulk_default(&self, settings: BulkSettings) {
        *self.bulk_default.lock().unwrap_or_else(|p| p.into_inner()) = settings;
    }

    pub fn set_bulk(&self, store: &str, settings: BulkSettings) -> Result<(), crate::MockError> {
        let mut stores = self.lock();
        let s = crate::platform::store_mut(&mut stores, store)?;
        s.bulk.settings = settings;
        Ok(())
    }
}

enum Step {
    Cursor(String),
    Line(usize),
}

fn append(path: &PathBuf, lines: &[Value]) -> std::io::Result<u64> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut buf = Vec::new();
    for l in lines {
        serde_json::to_writer(&mut buf, l)?;
        buf.push(b'\n');
    }
    f.write_all(&buf)?;
    Ok(buf.len() as u64)
}

fn finish_payload(op: &BulkOp) -> Value {
    json!({
        "admin_graphql_api_id": op.gid(),
        "completed_at": op.completed_at.map(crate::catalog::iso),
        "created_at": crate::catalog::iso(op.created_at),
        "error_code": op.error_code.map(str::to_lowercase),
        "status": op.status.as_str().to_lowercase(),
        "type": op.kind.as_str().to_lowercase(),
    })
}

/// The result files, staged uploads, and the control API's bulk settings.
pub(crate) fn routes() -> axum::Router<Arc<Platform>> {
    use axum::routing::{get, post, put};
    axum::Router::new()
        .route("/bulk-results/{token}", get(result_file))
        .route(
            "/staged-uploads/{*key}",
            put(staged_upload).layer(axum::extract::DefaultBodyLimit::max(100 << 20)),
        )
        .route("/control/stores/{store}/bulk", post(set_settings))
}

/// Streams a result file in chunks (never whole in memory); an expired or unknown link is
/// refused as the storage service does.
async fn result_file(
    axum::extract::State(p): axum::extract::State<Arc<Platform>>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Some(path) = p.bulk_file(&token) else {
        return (
            axum::http::StatusCode::FORBIDDEN,
            "<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>",
        )
            .into_response();
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        // A failed operation that wrote nothing has an empty result.
        Err(_) => return (axum::http::StatusCode::OK, "").into_response(),
    };
    let chunks = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; 256 * 1024];
            let n = std::io::Read::read(&mut file, &mut buf)?;
            buf.truncate(n);
            Ok::<_, std::io::Error>((buf, file))
        })
        .await
        .map_err(std::io::Error::other);
        match read {
            Ok(Ok((buf, _))) if buf.is_empty() => None,
            Ok(Ok((buf, file))) => Some((Ok(axum::body::Bytes::from(buf)), Some(file))),
            Ok(Err(e)) | Err(e) => Some((Err(e), None)),
        }
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/jsonl")],
        axum::body::Body::from_stream(chunks),
    )
        .into_response()
}

/// A staged upload's file, PUT to the URL `stagedUploadsCreate` gave.
async fn staged_upload(
    axum::extract::State(p): axum::extract::State<Arc<Platform>>,
    axum::extract::Path(key): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::http::StatusCode, crate::MockError> {
    let mut stores = p.lock();
    let Some(bulk) = stores
        .values_mut()
        .map(|s| &mut s.bulk)
        .find(|b| b.staged.contains_key(&key))
    else {
        return Err(crate::MockError::NotFound("no such upload target".into()));
    };
    let path = std::env::temp_dir().join(format!(
        "ferry-mock-staged-{}-{}.jsonl",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, &body).map_err(|_| crate::MockError::Internal)?;
    bulk.staged.insert(key, Some(path));
    Ok(axum::http::StatusCode::CREATED)
}

async fn set_settings(
    axum::extract::State(p): axum::extract::State<Arc<Platform>>,
    axum::extract::Path(store): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::Json<Value>, crate::MockError> {
    let s: BulkSettings = serde_json::from_slice(&body)
        .map_err(|e| crate::MockError::BadRequest(format!("invalid body: {e}")))?;
    if !(s.rows_per_s.is_finite() && s.rows_per_s > 0.0) || s.url_ttl_ms < 0 || s.max_running == 0 {
        return Err(crate::MockError::BadRequest(
            "rows_per_s is positive, url_ttl_ms at least 0, max_running at least 1".into(),
        ));
    }
    p.set_bulk(&store, s)?;
    Ok(axum::Json(json!({"ok": true})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattens_nested_connections_with_parent_ids() {
        let node = json!({
            "id": "P1", "title": "t",
            "variants": { "nodes": [
                { "id": "V1", "inventoryItem": { "id": "I1", "levels": { "edges": [ { "node": { "id": "L1" } } ] } } },
            ] },
            "media": { "nodes": [] },
        });
        let mut lines = Vec::new();
        flatten(node, None, &mut lines);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], json!({"id": "P1", "title": "t"}));
        assert_eq!(lines[1]["__parentId"], "P1");
        assert_eq!(lines[1]["inventoryItem"], json!({"id": "I1"}));
        assert_eq!(lines[2], json!({"id": "L1", "__parentId": "V1"}));
    }

    #[test]
    fn a_step_pages_the_root_and_opens_nested_connections() {
        let q = step_query(
            "{ products(first: 3) { edges { node { id variants { nodes { id } } } } } }",
            250,
            Some("abc"),
        )
        .unwrap_or_default();
        assert!(q.contains("products(first: 250, after: \"abc\")"), "{q}");
        assert!(q.contains("variants(first: 250)"), "{q}");
        assert!(q.contains("mockBulkPage: pageInfo"), "{q}");
    }
}
