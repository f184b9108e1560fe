//! Bulk exports: the whole catalog read by one asynchronous `bulkOperationRunQuery` instead of
//! thousands of pages. The operation is followed through `bulkOperation(id:)`; its result, a
//! JSONL file with each nested node on a line of its own (`__parentId` names its product), is
//! streamed line by line and the products put back together one at a time, so memory holds
//! one product whatever the catalog's size. Bulk runs are not charged to the cost bucket: a
//! large catalog reads in minutes instead of hours of a store's budget.
//!
//! What can go wrong is answered here: a shop already running as many operations as it may
//! (`LIMIT_REACHED`, `OPERATION_IN_PROGRESS`) is waited for; a result URL that expired before
//! it was read makes the export run again; an operation that failed or was cancelled (even
//! with partial data) is reported, and the caller pages instead.

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
    /// Objects the operation has written so far.
    pub objects: u64,
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
}

impl Default for BulkOptions {
    fn default() -> Self {
        BulkOptions {
            poll: Duration::from_secs(2),
            max_wait: Duration::from_secs(30 * 60),
            attempts: 3,
            max_line: 16 << 20,
        }
    }
}

/// An export's end: the catalog to stream, or why there is none (the caller pages instead).
pub enum Export {
    Ready(Box<CatalogStream>),
    Failed { reason: String },
}

/// The catalog export: every connection a product needs, grouped so that each product's
/// lines follow it (at most 5 connections, nested 1 deep). With the network's location, each
/// variant's `available` is the level there; without, the sum over locations.
pub fn catalog_query(location: Option<&str>) -> String {
    let level = match location {
        Some(l) => format!(
            "inventoryLevel(locationId: {}) {{ quantities(names: [\"available\"]) {{ name quantity }} }}",
            Value::String(l.to_owned())
        ),
        None => String::new(),
    };
    format!(
        "{{ products {{ edges {{ node {{ id title handle status vendor productType tags descriptionHtml updatedAt \
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
            };
            // Told when something moved, not at every look.
            if now != last {
                progress(&now);
                last = now;
            }
        }
        Ok(op)
    }

    /// The whole catalog by bulk export, ready to stream; or why not (the caller pages).
    /// `started`: an export of [`catalog_query`] already started (with [`Self::bulk_run_query`])
    /// to follow first, so that two stores' exports run at once.
    pub async fn export_catalog(
        &self,
        location: Option<&str>,
        started: Option<BulkOperation>,
        opts: &BulkOptions,
        progress: &mut (dyn FnMut(&BulkProgress) + Send),
    ) -> Result<Export, ConnectError> {
        let query = catalog_query(location);
        let mut last = String::new();
        let mut started = started;
        for _ in 0..opts.attempts.max(1) {
            let op = match started.take() {
                Some(op) => self.follow(op, opts, progress).await?,
                None => self.bulk_query_to_end(&query, opts, progress).await?,
            };
            match (op.status.as_str(), op.url.as_deref()) {
                ("COMPLETED", Some(url)) => {
                    progress(&BulkProgress {
                        phase: "downloading".into(),
                        objects: op.object_count,
                    });
                    match self.open_result(url, opts).await? {
                        Some(stream) => return Ok(Export::Ready(Box::new(stream))),
                        None => last = "the result URL expired before it was read".into(),
                    }
                }
                // Finished with nothing to read: an empty catalog.
                ("COMPLETED", None) if op.object_count == 0 => {
                    return Ok(Export::Ready(Box::new(CatalogStream::empty(opts.max_line))));
                }
                ("EXPIRED", _) => last = "the result expired before it was read".into(),
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
                    return Ok(Export::Failed { reason });
                }
            }
            tracing::info!(store = %self.key(), "{last}; running the export again");
        }
        Ok(Export::Failed {
            reason: format!("bulk export: {last}, {} times", opts.attempts.max(1)),
        })
    }

    /// Opens a result file (`None`: its URL expired or is refused: run again). The URL is the
    /// storage service's, signed: no store token is sent to it.
    async fn open_result(
        &self,
        url: &str,
        opts: &BulkOptions,
    ) -> Result<Option<CatalogStream>, ConnectError> {
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
        Ok(Some(CatalogStream {
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

/// A catalog export read one line at a time; products come out whole.
pub struct CatalogStream {
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

impl CatalogStream {
    fn empty(max_line: usize) -> CatalogStream {
        CatalogStream {
            resp: None,
            buf: Vec::new(),
            current: None,
            max_line,
            read_timeout: Duration::from_secs(30),
            lines: 0,
        }
    }

    /// Lines read so far.
    pub fn lines(&self) -> u64 {
        self.lines
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
    pub async fn next(&mut self) -> Result<Option<Product>, ConnectError> {
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

    /// Up to `n` whole products; `None` when the file is read.
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
