//! Bulk exports: the whole catalog read by one asynchronous `bulkOperationRunQuery` instead of
//! thousands of pages. The operation is followed through `bulkOperation(id:)`; its result, a
//! JSONL file with each nested node on a line of its own (`__parentId` names its product), is
//! streamed line by line and the products put back together one at a time, so memory holds
//! one product whatever the catalog's size. Bulk runs are not charged to the cost bucket: a
//! large catalog reads in minutes instead of hours of a store's budget.
//!
//! A large catalog is split into parts by product id range, one operation each, run at once
//! (Shopify lets a shop run 5 bulk queries at a time since 2026-01): each part's result is read
//! in turn, so the stream still yields one product at a time, in id order.
//!
//! What can go wrong is answered here: a shop already running as many operations as it may
//! (`LIMIT_REACHED`, `OPERATION_IN_PROGRESS`) is waited for; a result URL that expired before
//! it was read makes the export run again; an operation that failed or was cancelled (even
//! with partial data) is reported, and the caller pages instead.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::model::{Collection, Image, Product, Variant};
use super::{ShopifyConnector, check_user_errors, ms, parse, queries};
use crate::error::ConnectError;

/// A bulk operation as `bulkOperation(id:)` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulkOperation {
    pub id: String,
    /// `CREATED`, `RUNNING`, `COMPLETED`, `FAILED`, `CANCELING`, `CANCELED` or `EXPIRED`.
    pub status: String,
    pub error_code: Option<String>,
    pub object_count: u64,
    pub url: Option<String>,
    pub partial_url: Option<String>,
}

impl BulkOperation {
    pub fn running(&self) -> bool {
        matches!(self.status.as_str(), "CREATED" | "RUNNING" | "CANCELING")
    }
}

/// Where an export stands, for a progress line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BulkProgress {
    /// `waiting` (the shop runs as many operations as it may), `created`, `running`,
    /// `downloading`.
    pub phase: String,
    /// Objects the operation (every part of the export) has written so far.
    pub objects: u64,
    /// Operations the export is split into.
    pub parts: usize,
}

/// How an export is followed.
#[derive(Debug, Clone)]
pub struct BulkOptions {
    /// Between two looks at a running operation.
    pub poll: Duration,
    /// How long to wait for a place while the shop runs as many operations as it may.
    pub max_wait: Duration,
    /// Runs of the export when a result URL expired before it was read.
    pub attempts: u32,
    /// The longest line accepted (a product's description is on its line).
    pub max_line: usize,
    /// Operations a catalog export is split into, by product id range, run at once (Shopify
    /// allows 5 bulk queries per shop at a time; a busy shop is waited for part by part).
    pub parts: usize,
}

impl Default for BulkOptions {
    fn default() -> Self {
        BulkOptions {
            poll: Duration::from_secs(2),
            max_wait: Duration::from_secs(30 * 60),
            attempts: 3,
            max_line: 16 << 20,
            parts: 5,
        }
    }
}

/// An export's end: the catalog to stream, or why there is none (the caller pages instead).
pub enum Export {
    Ready(Box<CatalogStream>),
    Failed { reason: String },
}

/// A catalog export's parts (a product id range each), those started already with their
/// operation; from [`ShopifyConnector::start_catalog_export`] or planned when exporting.
#[derive(Debug, Clone)]
pub struct ExportPlan {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
struct Part {
    query: String,
    started: Option<BulkOperation>,
}

/// How a part ended.
enum PartEnd {
    Url(String),
    Empty,
    Failed(String),
}

/// Search filters splitting the product ids `lo..=hi` into at most `parts` ranges of equal
/// width; the first range has no lower bound and the last no upper one, so products created
/// while the export runs are read as one operation would read them. One range: no filter.
pub fn id_ranges(lo: u64, hi: u64, parts: usize) -> Vec<Option<String>> {
    let span = hi.saturating_sub(lo).saturating_add(1);
    let k = (parts.max(1) as u64).min(span);
    if k <= 1 {
        return vec![None];
    }
    let width = span.div_ceil(k);
    // Upper bounds of every range but the last.
    let cuts: Vec<u64> = (1..k)
        .map(|i| lo + i * width - 1)
        .filter(|c| *c < hi)
        .collect();
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut below: Option<u64> = None;
    for c in &cuts {
        out.push(Some(match below {
            None => format!("id:<={c}"),
            Some(b) => format!("id:>{b} id:<={c}"),
        }));
        below = Some(*c);
    }
    out.push(below.map(|b| format!("id:>{b}")));
    out
}

/// The catalog export: every connection a product needs, grouped so that each product's
/// lines follow it (at most 5 connections, nested 1 deep). With the network's location, each
/// variant's `available` is the level there; without, the sum over locations. `filter`: a
/// search over products (a part's id range).
pub fn catalog_query(location: Option<&str>, filter: Option<&str>) -> String {
    let level = match location {
        Some(l) => format!(
            "inventoryLevel(locationId: {}) {{ quantities(names: [\"available\"]) {{ name quantity }} }}",
            Value::String(l.to_owned())
        ),
        None => String::new(),
    };
    let args = match filter {
        Some(f) => format!("(query: {})", Value::String(f.to_owned())),
        None => String::new(),
    };
    format!(
        "{{ products{args} {{ edges {{ node {{ id title handle status vendor productType tags descriptionHtml updatedAt \
         variants {{ edges {{ node {{ id sku price inventoryQuantity selectedOptions {{ name value }} inventoryItem {{ id {level} }} }} }} }} \
         collections {{ edges {{ node {{ id handle title }} }} }} \
         media {{ edges {{ node {{ id alt ... on MediaImage {{ image {{ url }} }} }} }} }} }} }} }} }}"
    )
}

const RUN_QUERY: &str = r#"
mutation Run($query: String!) {
  bulkOperationRunQuery(query: $query, groupObjects: true) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}"#;

const OPERATION: &str = r#"
query Op($id: ID!) {
  bulkOperation(id: $id) { id status errorCode objectCount url partialDataUrl }
}"#;

const ID_BOUNDS: &str = r#"
query Bounds {
  lowest: products(first: 1, sortKey: ID) { nodes { id } }
  highest: products(first: 1, sortKey: ID, reverse: true) { nodes { id } }
}"#;

const CANCEL: &str = r#"
mutation Cancel($id: ID!) {
  bulkOperationCancel(id: $id) { bulkOperation { id status } userErrors { field message } }
}"#;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GqlOperation {
    id: String,
    status: String,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    object_count: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    partial_data_url: Option<String>,
}

impl From<GqlOperation> for BulkOperation {
    fn from(g: GqlOperation) -> BulkOperation {
        BulkOperation {
            id: g.id,
            status: g.status,
            error_code: g.error_code,
            object_count: g
                .object_count
                .and_then(|c| c.parse().ok())
                .unwrap_or_default(),
            url: g.url,
            partial_url: g.partial_data_url,
        }
    }
}

/// The shop already runs as many bulk operations as it may.
const BUSY: [&str; 2] = ["LIMIT_REACHED", "OPERATION_IN_PROGRESS"];

impl ShopifyConnector {
    /// Starts a bulk query; `None` while the shop runs as many as it may.
    pub async fn bulk_run_query(&self, query: &str) -> Result<Option<BulkOperation>, ConnectError> {
        let endpoint = "mutation bulkOperationRunQuery";
        let d = self
            .graphql(
                endpoint,
                RUN_QUERY,
                json!({ "query": query }),
                queries::MUTATION_COST,
            )
            .await?;
        let payload = &d["bulkOperationRunQuery"];
        match check_user_errors(endpoint, payload) {
            Err(e) if BUSY.iter().any(|c| e.has_code(c)) => return Ok(None),
            other => other?,
        }
        let op: GqlOperation = parse(endpoint, "bulkOperation", &payload["bulkOperation"])?;
        Ok(Some(op.into()))
    }

    /// A bulk operation's state (`None`: the shop knows no such operation).
    pub async fn bulk_operation(&self, id: &str) -> Result<Option<BulkOperation>, ConnectError> {
        let endpoint = "query bulkOperation";
        let d = self
            .graphql(endpoint, OPERATION, json!({ "id": id }), 1.0)
            .await?;
        if d["bulkOperation"].is_null() {
            return Ok(None);
        }
        let op: GqlOperation = parse(endpoint, "bulkOperation", &d["bulkOperation"])?;
        Ok(Some(op.into()))
    }

    /// Cancels a running bulk operation (one that already ended is left as it is).
    pub async fn bulk_cancel(&self, id: &str) -> Result<(), ConnectError> {
        let endpoint = "mutation bulkOperationCancel";
        self.graphql(
            endpoint,
            CANCEL,
            json!({ "id": id }),
            queries::MUTATION_COST,
        )
        .await?;
        Ok(())
    }

    /// Runs a bulk query to its end: waits for a place while the shop is busy, follows the
    /// operation, and answers it finished (`COMPLETED`, `FAILED`, `CANCELED`, `EXPIRED`).
    pub async fn bulk_query_to_end(
        &self,
        query: &str,
        opts: &BulkOptions,
        progress: &mut (dyn FnMut(&BulkProgress) + Send),
    ) -> Result<BulkOperation, ConnectError> {
        let waited_since = tokio::time::Instant::now();
        let op = loop {
            if let Some(op) = self.bulk_run_query(query).await? {
                break op;
            }
            if waited_since.elapsed() >= opts.max_wait {
                return Err(ConnectError::Transient {
                    endpoint: "mutation bulkOperationRunQuery".into(),
                    message: format!(
                        "the shop ran as many bulk operations as it may for {} s",
                        opts.max_wait.as_secs()
                    ),
                    upstream: String::new(),
                    retry_after: Some(opts.poll),
                });
            }
            progress(&BulkProgress {
                phase: "waiting".into(),
                objects: 0,
                parts: 1,
            });
            tokio::time::sleep(opts.poll).await;
        };
        self.follow(op, opts, progress).await
    }

    /// Follows a started operation to its end.
    async fn follow(
        &self,
        mut op: BulkOperation,
        opts: &BulkOptions,
        progress: &mut (dyn FnMut(&BulkProgress) + Send),
    ) -> Result<BulkOperation, ConnectError> {
        let mut last = BulkProgress {
            phase: "created".into(),
            objects: 0,
            parts: 1,
        };
        progress(&last);
        while op.running() {
            tokio::time::sleep(opts.poll).await;
            op = self.bulk_operation(&op.id).await?.ok_or_else(|| {
                ConnectError::data(
                    "query bulkOperation",
                    "bulkOperation",
                    "the operation is gone",
                )
            })?;
            let now = BulkProgress {
                phase: op.status.to_lowercase(),
                objects: op.object_count,
                parts: 1,
            };
            // Told when something moved, not at every look.
            if now != last {
                progress(&now);
                last = now;
            }
        }
        Ok(op)
    }

    /// The product id ranges a catalog export is split into (one when the shop has fewer
    /// products than parts, or ids that are not numbers).
    pub async fn plan_catalog_export(
        &self,
        location: Option<&str>,
        opts: &BulkOptions,
    ) -> Result<ExportPlan, ConnectError> {
        let endpoint = "query products (id bounds)";
        let d = self.graphql(endpoint, ID_BOUNDS, json!({}), 4.0).await?;
        let id = |k: &str| {
            d[k]["nodes"][0]["id"]
                .as_str()
                .and_then(|g| g.rsplit('/').next())
                .and_then(|n| n.parse::<u64>().ok())
        };
        let filters = match (id("lowest"), id("highest")) {
            (Some(lo), Some(hi)) if lo <= hi => id_ranges(lo, hi, opts.parts),
            _ => vec![None],
        };
        Ok(ExportPlan {
            parts: filters
                .into_iter()
                .map(|f| Part {
                    query: catalog_query(location, f.as_deref()),
                    started: None,
                })
                .collect(),
        })
    }

    /// Plans a catalog export and starts its parts without waiting for them (a part the busy
    /// shop has no room for is started when the export is followed), so that two stores'
    /// exports run at once.
    pub async fn start_catalog_export(
        &self,
        location: Option<&str>,
        opts: &BulkOptions,
    ) -> Result<ExportPlan, ConnectError> {
        let mut plan = self.plan_catalog_export(location, opts).await?;
        for part in &mut plan.parts {
            part.started = self.bulk_run_query(&part.query).await?;
        }
        Ok(plan)
    }

    /// The whole catalog by bulk export, ready to stream; or why not (the caller pages).
    /// `started`: an export begun with [`Self::start_catalog_export`], to follow; without,
    /// one is planned and run here. Every part runs at once; the export is ready when all
    /// have completed, and fails (for the caller to page) when one fails.
    pub async fn export_catalog(
        &self,
        location: Option<&str>,
        started: Option<ExportPlan>,
        opts: &BulkOptions,
        progress: &mut (dyn FnMut(&BulkProgress) + Send),
    ) -> Result<Export, ConnectError> {
        let plan = match started {
            Some(p) => p,
            None => self.plan_catalog_export(location, opts).await?,
        };
        let n = plan.parts.len();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, BulkProgress)>();
        let runs = plan.parts.iter().cloned().enumerate().map(|(i, part)| {
            let tx = tx.clone();
            async move {
                let mut hear = move |p: &BulkProgress| {
                    let _ = tx.send((i, p.clone()));
                };
                let end = self
                    .part_to_end(&part.query, part.started, opts, &mut hear)
                    .await;
                (part.query, end)
            }
        });
        let all = futures_util::future::join_all(runs);
        drop(tx);
        tokio::pin!(all);
        // A part not heard from yet has no phase (it is being started or waited for).
        let mut seen = vec![
            BulkProgress {
                phase: String::new(),
                objects: 0,
                parts: 1,
            };
            n
        ];
        let mut told: Option<BulkProgress> = None;
        let ends = loop {
            tokio::select! {
                ends = &mut all => break ends,
                Some((i, p)) = rx.recv() => {
                    seen[i] = p;
                    let now = combined(&seen);
                    // Told when something moved, not at every look of every part.
                    if told.as_ref() != Some(&now) {
                        progress(&now);
                        told = Some(now);
                    }
                }
            }
        };
        // What the parts said as they ended.
        while let Ok((i, p)) = rx.try_recv() {
            seen[i] = p;
        }
        let mut ready = VecDeque::with_capacity(n);
        for (query, end) in ends {
            match end? {
                PartEnd::Url(url) => ready.push_back((query, url)),
                PartEnd::Empty => {}
                PartEnd::Failed(reason) => return Ok(Export::Failed { reason }),
            }
        }
        progress(&BulkProgress {
            phase: "downloading".into(),
            objects: seen.iter().map(|p| p.objects).sum(),
            parts: n,
        });
        let mut stream = CatalogStream::empty(opts.max_line);
        stream.shop = Some(self.clone());
        stream.opts = opts.clone();
        stream.rest = ready;
        // The first part opened now: one whose result can not be had fails the export here,
        // while the caller can still page instead.
        if let Some((query, url)) = stream.rest.pop_front() {
            match self.open_part(&query, &url, opts).await? {
                Ok(first) => stream.current = Some(first),
                Err(reason) => return Ok(Export::Failed { reason }),
            }
        }
        Ok(Export::Ready(Box::new(stream)))
    }

    /// Runs one part to its end, again when its result expired before it was read.
    async fn part_to_end(
        &self,
        query: &str,
        started: Option<BulkOperation>,
        opts: &BulkOptions,
        progress: &mut (dyn FnMut(&BulkProgress) + Send),
    ) -> Result<PartEnd, ConnectError> {
        let mut started = started;
        for _ in 0..opts.attempts.max(1) {
            let op = match started.take() {
                Some(op) => self.follow(op, opts, progress).await?,
                None => self.bulk_query_to_end(query, opts, progress).await?,
            };
            match (op.status.as_str(), op.url) {
                ("COMPLETED", Some(url)) => return Ok(PartEnd::Url(url)),
                // Finished with nothing to read: no products in the range.
                ("COMPLETED", None) if op.object_count == 0 => return Ok(PartEnd::Empty),
                ("EXPIRED", _) => {
                    tracing::info!(store = %self.key(), "the bulk result expired before it was read; running the export again");
                }
                (status, _) => {
                    let mut reason = format!(
                        "bulk export {} ({})",
                        status.to_lowercase(),
                        op.error_code.as_deref().unwrap_or("no error code")
                    );
                    if op.partial_url.is_some() {
                        reason.push_str(&format!(
                            " after {} objects; partial data not used",
                            op.object_count
                        ));
                    }
                    return Ok(PartEnd::Failed(reason));
                }
            }
        }
        Ok(PartEnd::Failed(format!(
            "bulk export: the result expired before it was read, {} times",
            opts.attempts.max(1)
        )))
    }

    /// Opens a part's result, running the part again when its URL expired (`Err`: why it can
    /// not be had).
    async fn open_part(
        &self,
        query: &str,
        url: &str,
        opts: &BulkOptions,
    ) -> Result<Result<PartStream, String>, ConnectError> {
        let mut url = url.to_owned();
        for _ in 0..opts.attempts.max(1) {
            if let Some(stream) = self.open_result(&url, opts).await? {
                return Ok(Ok(stream));
            }
            tracing::info!(store = %self.key(), "the bulk result URL expired before it was read; running the export again");
            match self.part_to_end(query, None, opts, &mut |_| {}).await? {
                PartEnd::Url(u) => url = u,
                PartEnd::Empty => return Ok(Ok(PartStream::empty(opts.max_line))),
                PartEnd::Failed(reason) => return Ok(Err(reason)),
            }
        }
        Ok(Err(format!(
            "bulk export: the result URL expired before it was read, {} times",
            opts.attempts.max(1)
        )))
    }

    /// Opens a result file (`None`: its URL expired or is refused: run again). The URL is the
    /// storage service's, signed: no store token is sent to it.
    async fn open_result(
        &self,
        url: &str,
        opts: &BulkOptions,
    ) -> Result<Option<PartStream>, ConnectError> {
        let endpoint = "bulk result file";
        let checked = self
            .client
            .options()
            .outbound
            .check_url(url)
            .map_err(|r| ConnectError::Outbound(r.0))?;
        let resp = tokio::time::timeout(
            self.client.options().timeout,
            self.client.http().get(checked).send(),
        )
        .await
        .map_err(|_| transient(endpoint, "timed out"))?
        .map_err(|e| transient(endpoint, e.without_url().to_string()))?;
        let status = resp.status();
        if matches!(status.as_u16(), 400 | 403 | 404 | 410) {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(transient(endpoint, format!("answered {status}")));
        }
        Ok(Some(PartStream {
            resp: Some(resp),
            buf: Vec::new(),
            current: None,
            max_line: opts.max_line,
            read_timeout: self.client.options().timeout,
            lines: 0,
        }))
    }
}

fn transient(endpoint: &str, message: impl Into<String>) -> ConnectError {
    ConnectError::Transient {
        endpoint: endpoint.into(),
        message: message.into(),
        upstream: String::new(),
        retry_after: None,
    }
}

/// Every part's phases as one: running while any part runs, the objects of all.
fn combined(parts: &[BulkProgress]) -> BulkProgress {
    let any = |phase: &str| parts.iter().any(|p| p.phase == phase);
    let phase = ["running", "created", "waiting"]
        .into_iter()
        .find(|p| any(p))
        .map(str::to_owned)
        .or_else(|| parts.first().map(|p| p.phase.clone()))
        .unwrap_or_default();
    BulkProgress {
        phase,
        objects: parts.iter().map(|p| p.objects).sum(),
        parts: parts.len(),
    }
}

/// A catalog export read one line at a time, part after part; products come out whole.
pub struct CatalogStream {
    current: Option<PartStream>,
    /// Parts still to read: their query (to run again if the URL expired) and result URL.
    rest: VecDeque<(String, String)>,
    shop: Option<ShopifyConnector>,
    opts: BulkOptions,
    /// Lines of the parts already read.
    lines: u64,
}

impl CatalogStream {
    fn empty(max_line: usize) -> CatalogStream {
        CatalogStream {
            current: None,
            rest: VecDeque::new(),
            shop: None,
            opts: BulkOptions {
                max_line,
                ..BulkOptions::default()
            },
            lines: 0,
        }
    }

    /// Lines read so far.
    pub fn lines(&self) -> u64 {
        self.lines + self.current.as_ref().map_or(0, |c| c.lines)
    }

    /// The next whole product; `None` when every part is read.
    pub async fn next(&mut self) -> Result<Option<Product>, ConnectError> {
        loop {
            if let Some(cur) = self.current.as_mut() {
                if let Some(p) = cur.next().await? {
                    return Ok(Some(p));
                }
                self.lines += cur.lines;
                self.current = None;
            }
            let (Some((query, url)), Some(shop)) = (self.rest.pop_front(), self.shop.as_ref())
            else {
                return Ok(None);
            };
            match shop.open_part(&query, &url, &self.opts).await? {
                Ok(next) => self.current = Some(next),
                Err(reason) => return Err(transient(ENDPOINT, reason)),
            }
        }
    }

    /// Up to `n` whole products; `None` when the export is read.
    pub async fn next_page(&mut self, n: usize) -> Result<Option<Vec<Product>>, ConnectError> {
        let mut page = Vec::with_capacity(n);
        while page.len() < n {
            match self.next().await? {
                Some(p) => page.push(p),
                None => break,
            }
        }
        Ok((!page.is_empty()).then_some(page))
    }
}

/// One part's result file read one line at a time.
struct PartStream {
    resp: Option<reqwest::Response>,
    buf: Vec<u8>,
    current: Option<Product>,
    max_line: usize,
    read_timeout: Duration,
    lines: u64,
}

const ENDPOINT: &str = "bulk result file";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProductLine {
    id: String,
    title: String,
    handle: String,
    status: String,
    vendor: String,
    product_type: String,
    tags: Vec<String>,
    #[serde(default)]
    description_html: String,
    updated_at: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VariantLine {
    id: String,
    sku: Option<String>,
    price: String,
    #[serde(default)]
    inventory_quantity: Option<i64>,
    selected_options: Vec<super::model::GqlOption>,
    inventory_item: ItemLine,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemLine {
    id: String,
    #[serde(default)]
    inventory_level: Option<LevelLine>,
}

#[derive(Deserialize)]
struct LevelLine {
    quantities: Vec<QuantityLine>,
}

#[derive(Deserialize)]
struct QuantityLine {
    name: String,
    quantity: i64,
}

#[derive(Deserialize)]
struct MediaLine {
    id: String,
    #[serde(default)]
    alt: Option<String>,
    #[serde(default)]
    image: Option<super::model::GqlUrl>,
}

impl PartStream {
    fn empty(max_line: usize) -> PartStream {
        PartStream {
            resp: None,
            buf: Vec::new(),
            current: None,
            max_line,
            read_timeout: Duration::from_secs(30),
            lines: 0,
        }
    }

    /// The next line, without its newline; `None` at the end.
    async fn line(&mut self) -> Result<Option<Vec<u8>>, ConnectError> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let rest = self.buf.split_off(i + 1);
                let mut line = std::mem::replace(&mut self.buf, rest);
                line.pop();
                return Ok(Some(line));
            }
            if self.buf.len() > self.max_line {
                return Err(ConnectError::data(
                    ENDPOINT,
                    "$",
                    format!("a line longer than {} bytes", self.max_line),
                ));
            }
            let Some(resp) = self.resp.as_mut() else {
                return Ok((!self.buf.is_empty()).then(|| std::mem::take(&mut self.buf)));
            };
            let chunk = tokio::time::timeout(self.read_timeout, resp.chunk())
                .await
                .map_err(|_| transient(ENDPOINT, "reading timed out"))?
                .map_err(|e| transient(ENDPOINT, e.without_url().to_string()))?;
            match chunk {
                Some(c) => self.buf.extend_from_slice(&c),
                None => self.resp = None,
            }
        }
    }

    /// The next whole product; `None` when the file is read.
    async fn next(&mut self) -> Result<Option<Product>, ConnectError> {
        while let Some(raw) = self.line().await? {
            if raw.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.lines += 1;
            let v: Value = serde_json::from_slice(&raw)
                .map_err(|e| ConnectError::data(ENDPOINT, "$", format!("not JSON: {e}")))?;
            match v
                .get("__parentId")
                .and_then(Value::as_str)
                .map(str::to_owned)
            {
                None => {
                    let line: ProductLine = parse(ENDPOINT, "product", &v)?;
                    let next = Product {
                        updated_at: ms(&line.updated_at, ENDPOINT)?,
                        id: line.id,
                        title: line.title,
                        handle: line.handle,
                        status: line.status,
                        vendor: line.vendor,
                        product_type: line.product_type,
                        tags: line.tags,
                        description_html: line.description_html,
                        variants: Vec::new(),
                        collections: Vec::new(),
                        images: Vec::new(),
                    };
                    if let Some(done) = self.current.replace(next) {
                        return Ok(Some(done));
                    }
                }
                Some(parent) => self.attach(&parent, v)?,
            }
        }
        Ok(self.current.take())
    }

    /// Puts a child line on its product: grouped exports put a product's lines right after it.
    fn attach(&mut self, parent: &str, v: Value) -> Result<(), ConnectError> {
        let Some(p) = self.current.as_mut().filter(|p| p.id == parent) else {
            return Err(ConnectError::data(
                ENDPOINT,
                "__parentId",
                "a line does not follow its product (the export was not grouped)",
            ));
        };
        let id = v["id"].as_str().unwrap_or_default();
        let kind = id
            .strip_prefix("gid://shopify/")
            .and_then(|r| r.split('/').next())
            .unwrap_or_default();
        match kind {
            "ProductVariant" => {
                let l: VariantLine = parse(ENDPOINT, "variant", &v)?;
                let at_location = l.inventory_item.inventory_level.and_then(|lv| {
                    lv.quantities
                        .into_iter()
                        .find(|q| q.name == "available")
                        .map(|q| q.quantity)
                });
                p.variants.push(Variant {
                    id: l.id,
                    sku: l.sku.filter(|s| !s.is_empty()),
                    price: l.price,
                    options: l
                        .selected_options
                        .into_iter()
                        .map(|o| (o.name, o.value))
                        .collect(),
                    inventory_item_id: l.inventory_item.id,
                    available: at_location.or(l.inventory_quantity),
                });
            }
            "Collection" => {
                let c: Collection = parse(ENDPOINT, "collection", &v)?;
                p.collections.push(c);
            }
            _ => {
                // Media: images are synced; videos and 3D models have no image.
                let m: MediaLine = parse(ENDPOINT, "media", &v)?;
                if let Some(i) = m.image {
                    p.images.push(Image {
                        id: m.id,
                        url: i.url,
                        alt: m.alt.unwrap_or_default(),
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `id` is in the range a filter names (the two forms `id_ranges` writes).
    fn holds(filter: &Option<String>, id: u64) -> bool {
        let Some(f) = filter else { return true };
        f.split(' ').all(|t| {
            if let Some(n) = t.strip_prefix("id:<=") {
                id <= n.parse::<u64>().unwrap_or(0)
            } else if let Some(n) = t.strip_prefix("id:>") {
                id > n.parse::<u64>().unwrap_or(u64::MAX)
            } else {
                panic!("an unexpected term {t}")
            }
        })
    }

    #[test]
    fn id_ranges_cover_every_id_exactly_once() {
        for (lo, hi, parts) in [
            (1, 60, 5),
            (7, 7, 5),
            (3, 5, 5),
            (100, 100_099, 5),
            (1, 10, 3),
            (5, 1_000, 1),
        ] {
            let ranges = id_ranges(lo, hi, parts);
            assert!(ranges.len() <= parts && !ranges.is_empty());
            // Ids beyond the bounds (created while the export runs) fall in the outer parts.
            for id in (lo.saturating_sub(3)..=hi + 3).chain([0, u64::MAX]) {
                let n = ranges.iter().filter(|r| holds(r, id)).count();
                assert_eq!(n, 1, "id {id} of {lo}..={hi} in {parts} parts: {ranges:?}");
            }
        }
        assert_eq!(id_ranges(1, 100, 4).len(), 4);
        assert_eq!(id_ranges(9, 9, 5), vec![None]);
    }

    #[test]
    fn parts_show_as_one_progress() {
        let p = |phase: &str, objects| BulkProgress {
            phase: phase.into(),
            objects,
            parts: 1,
        };
        let all = combined(&[p("completed", 10), p("running", 5), p("", 0)]);
        assert_eq!(
            (all.phase.as_str(), all.objects, all.parts),
            ("running", 15, 3)
        );
        assert_eq!(combined(&[p("", 0), p("waiting", 0)]).phase, "waiting");
        assert_eq!(
            combined(&[p("completed", 1), p("completed", 2)]).phase,
            "completed"
        );
    }
}
