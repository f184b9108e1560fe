//! The sync engine's jobs. Webhooks only trigger work: every job re-reads the current state
//! from the platform, so late, doubled and reordered deliveries converge on the same result.
//!
//! - `webhook.received` (from the ingress) → `sync.product` (parent catalog changes, one
//!   waiting job per product), `sync.orders` (a store's new orders), `sync.level` (a stock
//!   change, checked after a short settle).
//! - `sync.product` reads the parent product once and fans out one `sync.push` per child (the
//!   newest snapshot replaces a waiting one).
//! - `sync.push` makes the child's copy what the rules say: a saga of upsert, then the stock of
//!   new variants; a later step failing for good undoes the earlier ones.
//! - `sync.orders` counts each order once (a unique row) and moves its quantities as deltas to
//!   every other store (`sync.adjust`, one idempotency key per order and store).
//! - `sync.level` tells ferry's own writes (the intent ledger) and sales from manual stock
//!   counts; a count wins by its timestamp and reaches the other stores as compare-and-set
//!   `sync.set`s.
//! - `sync.connect` subscribes a store's webhooks and links a child's catalog by SKU;
//!   `sync.reconcile` compares every child with the parent and repairs drift.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_connect::shopify::ShopifyConnector;
use ferry_connect::shopify::model::{InventoryDelta, Order, Product};
use ferry_connect::{Client, Secret, StaticToken};
use ferry_core::Cipher;
use ferry_queue::{Job, NewJob, Queue, WorkerBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::SyncError;
use crate::network::{Network, Role, StoreConfig, VariantLink};
use crate::plan::{
    changes, collection_handles, collections_match, plan, restore, satisfied, source_tag, twin,
};
use crate::webhooks::{Platform, WEBHOOK_QUEUE, WebhookJob, WebhookStores};
use ferry_db::{Db, exec, rows, tx_exec};

/// The queue every sync job runs on (fairness group: the store the job writes to).
pub const SYNC_QUEUE: &str = "sync";

pub const PRODUCT: &str = "sync.product";
pub const PUSH: &str = "sync.push";
pub const ORDERS: &str = "sync.orders";
pub const ADJUST: &str = "sync.adjust";
pub const LEVEL: &str = "sync.level";
pub const SET: &str = "sync.set";
pub const CONNECT: &str = "sync.connect";
pub const RECONCILE: &str = "sync.reconcile";

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Where the stores send webhooks: the public URL of `ferry serve`.
    pub public_url: String,
    /// How long a stock webhook waits before it is checked; later ones for the same item
    /// replace it (a burst is checked once).
    pub settle: Duration,
    /// Writes of ferry's older than this no longer explain a stock change (lost or failed).
    pub intent_ttl: Duration,
    /// The most jobs writing to one store at once, so one store's backlog never takes every
    /// worker.
    pub store_concurrency: u32,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            public_url: "http://127.0.0.1:8080".into(),
            settle: Duration::from_millis(500),
            intent_ttl: Duration::from_secs(60),
            store_concurrency: 4,
        }
    }
}

// ---- job payloads ---------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
struct ProductJob {
    product: String,
    cause: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct PushJob {
    child: String,
    product: String,
    /// The parent product when the fan-out read it; `None`: deleted in the parent.
    snapshot: Option<Product>,
    cause: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoreJob {
    store: String,
    cause: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct AdjustJob {
    store: String,
    key: String,
    /// (inventory item, delta)
    changes: Vec<(String, i64)>,
    cause: String,
    /// ferry's belief of the store's level already counts the delta (an order taken by the
    /// orders API moves the parent's expected level when it is confirmed).
    #[serde(default)]
    counted: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct LevelJob {
    store: String,
    item: String,
    /// When the store says the level changed (last write wins between stock counts).
    at_ms: i64,
    /// What the webhook said the level is: when a write of ferry's explains it, the job
    /// ends without a read (an echo); otherwise the store is read.
    #[serde(default)]
    available: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SetJob {
    store: String,
    item: String,
    quantity: i64,
    key: String,
    cause: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ReconcileJob {
    /// One child, or every child.
    child: Option<String>,
    full: bool,
}

/// What a reconciliation run found and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, sqlx::FromRow)]
pub struct RunReport {
    pub id: String,
    pub child: String,
    pub full_pass: i64,
    pub state: String,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub checked: i64,
    pub created: i64,
    pub updated: i64,
    pub stock_fixed: i64,
    pub cursor_ms: i64,
    pub error: Option<String>,
}

/// A sale of the orders API, planned: see [`Engine::api_sale_plan`].
pub(crate) struct ApiSale {
    parent: String,
    parent_lines: Vec<(String, i64)>,
    per_store: BTreeMap<String, BTreeMap<String, i64>>,
}

/// A create refused because the handle is in use (the payload names the field, not a code).
fn handle_taken(e: &ferry_connect::ConnectError) -> bool {
    match e {
        ferry_connect::ConnectError::UserErrors { errors, .. } => errors.iter().any(|u| {
            u.code.as_deref() == Some("TAKEN")
                || u.field
                    .as_ref()
                    .is_some_and(|f| f.last().is_some_and(|x| x == "handle"))
        }),
        _ => false,
    }
}

fn gid(kind: &str, v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(format!("gid://shopify/{kind}/{n}")),
        Value::String(s) if s.starts_with("gid://") => Some(s.clone()),
        Value::String(s) if !s.is_empty() => Some(format!("gid://shopify/{kind}/{s}")),
        _ => None,
    }
}

fn iso_ms(v: &Value) -> Option<i64> {
    v.as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_millisecond())
}

struct Inner {
    queue: Queue,
    net: Network,
    client: Client,
    stores: WebhookStores,
    opts: EngineOptions,
    shops: Mutex<HashMap<String, ShopifyConnector>>,
}

/// The sync engine: cheap to clone, one per process.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

macro_rules! kind {
    ($b:expr, $e:expr, $kind:expr, $method:ident, $payload:ty) => {{
        let e = $e.clone();
        $b.handle($kind, move |p: $payload, _ctx| {
            let e = e.clone();
            async move {
                e.$method(p).await.map_err(|err| {
                    // Waiting (for a write of ours, a rate limit, an open breaker) is routine.
                    let waits = matches!(err, SyncError::Wait(_))
                        || matches!(&err, SyncError::Connect(c) if matches!(c.class(), ferry_connect::ErrorClass::RateLimited | ferry_connect::ErrorClass::Open));
                    if waits {
                        tracing::debug!(kind = $kind, "{err}");
                    } else {
                        tracing::warn!(kind = $kind, error = %err, "sync job failed");
                    }
                    err.into_job_error()
                })
            }
        })
    }};
}

impl Engine {
    /// The engine on `queue`'s database (its tables migrated in). `cipher` opens the stores'
    /// tokens; `client` is the connectors' shared client; `stores` the process's webhook stores
    /// (the ingress's, so a store added here is known there at once).
    pub async fn new(
        queue: Queue,
        cipher: Cipher,
        client: Client,
        stores: WebhookStores,
        opts: EngineOptions,
    ) -> Result<Engine, SyncError> {
        let db = crate::db::open(&queue).await?;
        let net = Network::new(db, cipher, queue.clock());
        queue
            .set_default_group_cap(SYNC_QUEUE, Some(opts.store_concurrency))
            .await?;
        Ok(Engine {
            inner: Arc::new(Inner {
                queue,
                net,
                client,
                stores,
                opts,
                shops: Mutex::default(),
            }),
        })
    }

    pub fn network(&self) -> &Network {
        &self.inner.net
    }

    pub fn queue(&self) -> &Queue {
        &self.inner.queue
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.net.db
    }

    /// Registers every sync job kind (and the ingress's `webhook.received`) on a worker; it
    /// must take jobs from the `webhooks` and `sync` queues.
    pub fn register(&self, b: WorkerBuilder) -> WorkerBuilder {
        let b = kind!(b, self, WebhookJob::KIND, on_webhook, WebhookJob);
        let b = kind!(b, self, PRODUCT, product, ProductJob);
        let b = kind!(b, self, PUSH, push, PushJob);
        let b = kind!(b, self, ORDERS, orders, StoreJob);
        let b = kind!(b, self, ADJUST, adjust, AdjustJob);
        let b = kind!(b, self, LEVEL, level, LevelJob);
        let b = kind!(b, self, SET, set, SetJob);
        let b = kind!(b, self, CONNECT, connect, StoreJob);
        kind!(b, self, RECONCILE, reconcile, ReconcileJob)
    }

    /// The queues a worker running the engine takes jobs from.
    pub fn queues() -> [&'static str; 2] {
        [WEBHOOK_QUEUE, SYNC_QUEUE]
    }

    // ---- setting up -------------------------------------------------------------------

    /// Adds a store to the network and registers its webhook secret with the ingress.
    pub async fn add_store(
        &self,
        name: &str,
        role: Role,
        graphql_url: &str,
        token: &str,
        webhook_secret: &str,
        rules: &crate::rules::Rules,
    ) -> Result<(), SyncError> {
        if webhook_secret.len() < 8 {
            return Err(SyncError::Invalid(
                "the webhook secret must be at least 8 characters".into(),
            ));
        }
        self.inner
            .net
            .put(name, role, graphql_url, token, rules)
            .await?;
        self.inner
            .stores
            .put(name, Platform::Shopify, &[webhook_secret.to_owned()])
            .await
            .map_err(|e| SyncError::Invalid(e.to_string()))?;
        self.shops().remove(name);
        Ok(())
    }

    /// Enqueues the connection of a store (webhooks, location; for a child, linking its
    /// catalog by SKU and copying what it lacks). The job's id.
    pub async fn connect_store(&self, name: &str) -> Result<String, SyncError> {
        self.inner.net.store(name).await?;
        let job = NewJob::new(
            CONNECT,
            &StoreJob {
                store: name.to_owned(),
                cause: "connect".into(),
            },
        )?
        .queue(SYNC_QUEUE)
        .group(name)
        .singleton(&format!("connect:{name}"));
        Ok(self.inner.queue.enqueue(job).await?.id.to_string())
    }

    /// Enqueues a reconciliation of one child or all (`full`: every product, else those
    /// changed since the last run).
    pub async fn start_reconcile(
        &self,
        child: Option<&str>,
        full: bool,
    ) -> Result<String, SyncError> {
        if let Some(c) = child {
            let s = self.inner.net.store(c).await?;
            if s.role != Role::Child {
                return Err(SyncError::Invalid(format!("{c} is not a child store")));
            }
        }
        let job = NewJob::new(
            RECONCILE,
            &ReconcileJob {
                child: child.map(str::to_owned),
                full,
            },
        )?
        .queue(SYNC_QUEUE)
        .singleton(&format!("reconcile:{}:{full}", child.unwrap_or("*")));
        Ok(self.inner.queue.enqueue(job).await?.id.to_string())
    }

    /// Schedules an incremental reconciliation of every child (`expr`: cron, UTC).
    pub async fn schedule_reconcile(&self, expr: &str) -> Result<(), SyncError> {
        let job = NewJob::new(
            RECONCILE,
            &ReconcileJob {
                child: None,
                full: false,
            },
        )?
        .queue(SYNC_QUEUE)
        .singleton("reconcile:*:false");
        self.inner
            .queue
            .register_cron("ferry.reconcile", expr, &job)
            .await?;
        Ok(())
    }

    fn shops(&self) -> std::sync::MutexGuard<'_, HashMap<String, ShopifyConnector>> {
        self.inner.shops.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The connector of a store of the network.
    async fn shop(&self, store: &StoreConfig) -> Result<ShopifyConnector, SyncError> {
        if let Some(s) = self.shops().get(&store.name) {
            return Ok(s.clone());
        }
        let token = self.inner.net.token(&store.name).await?;
        let shop = ShopifyConnector::new(
            self.inner.client.clone(),
            &store.graphql_url,
            Arc::new(StaticToken(Secret::new(token))),
        );
        self.shops().insert(store.name.clone(), shop.clone());
        Ok(shop)
    }

    fn sync_job<P: Serialize>(&self, kind: &str, p: &P, group: &str) -> Result<NewJob, SyncError> {
        Ok(NewJob::new(kind, p)?.queue(SYNC_QUEUE).group(group))
    }

    /// A push of a parent product to a child: one waiting per (child, product), the newest
    /// snapshot replacing an older one.
    fn push_job(
        &self,
        child: &str,
        product: &str,
        snapshot: Option<Product>,
        cause: &str,
    ) -> Result<NewJob, SyncError> {
        let push = PushJob {
            child: child.to_owned(),
            product: product.to_owned(),
            snapshot,
            cause: cause.to_owned(),
        };
        Ok(self
            .sync_job(PUSH, &push, child)?
            .singleton(&format!("push:{child}:{product}"))
            .replace())
    }

    // ---- webhooks ---------------------------------------------------------------------

    async fn on_webhook(&self, w: WebhookJob) -> Result<(), SyncError> {
        let Some(store) = self.inner.net.get(&w.store).await? else {
            tracing::debug!(store = %w.store, "webhook from a store outside the network");
            return Ok(());
        };
        let cause = format!("webhook {} {}", w.topic, w.delivery_id);
        let job = match (store.role, w.topic.as_str()) {
            (Role::Parent, "products/create" | "products/update" | "products/delete") => {
                let id = gid("Product", &w.body["admin_graphql_api_id"])
                    .or_else(|| gid("Product", &w.body["id"]))
                    .ok_or_else(|| SyncError::Invalid("a product webhook without an id".into()))?;
                // One waiting job per product: a burst of edits is read once.
                self.sync_job(
                    PRODUCT,
                    &ProductJob {
                        product: id.clone(),
                        cause,
                    },
                    &store.name,
                )?
                .singleton(&format!("product:{id}"))
            }
            (_, "orders/create") => self
                .sync_job(
                    ORDERS,
                    &StoreJob {
                        store: store.name.clone(),
                        cause,
                    },
                    &store.name,
                )?
                .singleton(&format!("orders:{}", store.name)),
            (_, "inventory_levels/update") => {
                let item = gid("InventoryItem", &w.body["inventory_item_id"]).ok_or_else(|| {
                    SyncError::Invalid("a level webhook without an inventory item".into())
                })?;
                let at_ms = iso_ms(&w.body["updated_at"]).unwrap_or_else(|| self.now_ms());
                self.sync_job(
                    LEVEL,
                    &LevelJob {
                        store: store.name.clone(),
                        item: item.clone(),
                        at_ms,
                        available: w.body["available"].as_i64(),
                    },
                    &store.name,
                )?
                .singleton(&format!("level:{}:{item}", store.name))
                .replace()
                .run_in(self.inner.opts.settle)
            }
            _ => return Ok(()),
        };
        self.inner.queue.enqueue(job).await?;
        Ok(())
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.net.now_ms()
    }

    pub(crate) fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The parent's variant and inventory item with this SKU, asked of the platform (for a SKU
    /// the index has not seen: a product made after the parent was connected). `None` when
    /// no variant, or more than one, carries it.
    pub(crate) async fn parent_sku(
        &self,
        sku: &str,
    ) -> Result<Option<(String, String)>, SyncError> {
        let parent = self.inner.net.parent().await?;
        let shop = self.shop(&parent).await?;
        let found = shop.variants_by_sku(sku).await?;
        Ok(match found.as_slice() {
            [v] => Some((v.id.clone(), v.inventory_item_id.clone())),
            _ => None,
        })
    }

    /// The parent's available stock of an item as the platform says it now.
    pub(crate) async fn parent_available(&self, item: &str) -> Result<Option<i64>, SyncError> {
        let parent = self.inner.net.parent().await?;
        let shop = self.shop(&parent).await?;
        Ok(shop.available(item, &parent.location_id).await?)
    }

    /// What a sale taken by ferry itself (the orders API) writes: the parent's (item,
    /// quantity) lines and each store's deltas. Read before the transaction that confirms the
    /// order (on SQLite a read through the pool inside it would wait for itself).
    pub(crate) async fn api_sale_plan(
        &self,
        parent: &str,
        lines: &[(String, String, i64)],
    ) -> Result<ApiSale, SyncError> {
        let mut per_store: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for (variant, item, quantity) in lines {
            *per_store
                .entry(parent.to_owned())
                .or_default()
                .entry(item.clone())
                .or_default() -= quantity;
            for c in self.inner.net.copies_of(variant).await? {
                *per_store
                    .entry(c.child)
                    .or_default()
                    .entry(c.child_item)
                    .or_default() -= quantity;
            }
        }
        Ok(ApiSale {
            parent: parent.to_owned(),
            parent_lines: lines.iter().map(|(_, i, q)| (i.clone(), *q)).collect(),
            per_store,
        })
    }

    /// Writes a sale of the orders API in the transaction that confirms it: every store of
    /// the network (the parent too) gets one delta per line, keyed by the order, with its
    /// intents; the parent's expected level moves now and its reservation is let go, so
    /// stock held for the order is never counted twice.
    pub(crate) async fn api_sale(
        &self,
        tx: &mut ferry_queue::Tx,
        order: &str,
        sale: &ApiSale,
    ) -> Result<(), SyncError> {
        let now = self.now_ms();
        for (item, quantity) in &sale.parent_lines {
            tx_exec!(
                tx,
                "UPDATE ferry_levels SET expected = expected - $3, reserved = reserved - $3, updated_ms = $4 WHERE store = $1 AND item = $2",
                &sale.parent,
                item,
                *quantity,
                now
            )?;
        }
        let parent = &sale.parent;
        let per_store = sale.per_store.clone();
        let mut jobs = Vec::new();
        for (target, changes) in per_store {
            let job = AdjustJob {
                counted: &target == parent,
                store: target.clone(),
                key: format!("order:{order}:{target}"),
                changes: changes.into_iter().collect(),
                cause: format!("order {order} (orders API)"),
            };
            jobs.push(self.delta_job(tx, &job, now).await?);
        }
        tx.enqueue_batch(jobs).await?;
        Ok(())
    }

    /// A sale's delta job for one store, with its intents written in `tx`: from then on its
    /// deltas explain the store's levels (their webhooks are echoes).
    async fn delta_job(
        &self,
        tx: &mut ferry_queue::Tx,
        job: &AdjustJob,
        now: i64,
    ) -> Result<NewJob, SyncError> {
        for (item, delta) in &job.changes {
            tx_exec!(
                tx,
                "INSERT INTO ferry_intents (key, store, item, kind, amount, state, created_ms)
                 VALUES ($1, $2, $3, 'delta', $4, 'pending', $5) ON CONFLICT (key, store, item) DO NOTHING",
                &job.key,
                &job.store,
                item,
                *delta,
                now
            )?;
        }
        Ok(self.sync_job(ADJUST, job, &job.store)?.priority(1))
    }

    // ---- catalog ----------------------------------------------------------------------

    /// Remembers the parent's stock of variants ferry has not seen yet.
    async fn note_parent_levels(&self, parent: &str, p: &Product) -> Result<(), SyncError> {
        for v in &p.variants {
            if let Some(a) = v.available
                && self
                    .inner
                    .net
                    .level(parent, &v.inventory_item_id)
                    .await?
                    .is_none()
            {
                self.inner
                    .net
                    .set_level(parent, &v.inventory_item_id, a)
                    .await?;
            }
        }
        Ok(())
    }

    async fn product(&self, j: ProductJob) -> Result<(), SyncError> {
        let parent = self.inner.net.parent().await?;
        let snapshot = self.shop(&parent).await?.product(&j.product).await?;
        if let Some(p) = &snapshot {
            self.note_parent_levels(&parent.name, p).await?;
        }
        let mut jobs = Vec::new();
        for child in self.inner.net.children().await? {
            if child.state != "connected" {
                continue;
            }
            jobs.push(self.push_job(&child.name, &j.product, snapshot.clone(), &j.cause)?);
        }
        self.inner.queue.enqueue_batch(jobs).await?;
        Ok(())
    }

    async fn push(&self, j: PushJob) -> Result<(), SyncError> {
        let child = self.inner.net.store(&j.child).await?;
        let shop = self.shop(&child).await?;
        let link = self.inner.net.link(&child.name, &j.product).await?;
        let Some(parent_p) = j.snapshot else {
            return self.archive_copy(&child, &shop, link, &j.cause).await;
        };
        if let Some(l) = &link
            && l.state == "linked"
            && parent_p.updated_at < l.parent_updated
        {
            tracing::debug!(child = %child.name, product = %j.product, "older than what was pushed");
            return Ok(());
        }
        // The copy as it is now: by the link, else (an earlier create whose answer was lost)
        // by ferry's tag on it.
        let mut existing = None;
        if let Some(id) = link.as_ref().and_then(|l| l.child_product.as_deref()) {
            existing = shop.product(id).await?;
        }
        if existing.is_none() && link.is_some() {
            existing = shop
                .products_tagged(&source_tag(&j.product))
                .await?
                .into_iter()
                .next();
        }
        let input = plan(&parent_p, &child.rules, existing.as_ref());
        let created = existing.is_none();
        let after = match &existing {
            Some(e) if satisfied(&input, e) => e.clone(),
            Some(e) => shop.upsert(Some(&e.id), &input).await?,
            None => {
                // The intent first: a retry after a lost answer looks for the copy by tag.
                self.inner
                    .net
                    .set_link(&child.name, &j.product, None, "creating", 0)
                    .await?;
                shop.upsert(None, &input).await?
            }
        };
        let wrote = created || existing.as_ref().is_some_and(|e| !satisfied(&input, e));
        if wrote {
            self.inner
                .net
                .audit(
                    &child.name,
                    &after.id,
                    if created { "create" } else { "update" },
                    &Value::Object(changes(existing.as_ref(), &input)),
                    &j.cause,
                )
                .await?;
        }
        if created {
            self.inner
                .net
                .set_link(&child.name, &j.product, Some(&after.id), "creating", 0)
                .await?;
        }
        let old = self
            .inner
            .net
            .variant_links(&child.name, &j.product)
            .await?;
        let mut links = Vec::new();
        let mut fresh = Vec::new();
        for pv in &parent_p.variants {
            if let Some(cv) = twin(pv, &after) {
                if !old.iter().any(|l| l.child_variant == cv.id) {
                    fresh.push((pv.clone(), cv.clone()));
                }
                links.push(VariantLink {
                    child: child.name.clone(),
                    parent_variant: pv.id.clone(),
                    parent_item: pv.inventory_item_id.clone(),
                    child_variant: cv.id.clone(),
                    child_item: cv.inventory_item_id.clone(),
                    sku: pv.sku.clone(),
                    parent_product: j.product.clone(),
                });
            }
        }
        let parent_name = self.inner.net.parent().await?.name;
        let later_steps = async {
            // Step 2: collection membership follows the parent (by handle).
            if !collections_match(&parent_p, &child.rules, &after) {
                let mut ids = Vec::with_capacity(parent_p.collections.len());
                for pc in &parent_p.collections {
                    ids.push(self.child_collection(&child, &shop, pc).await?);
                }
                shop.set_collections(&after.id, &ids).await?;
                self.inner
                    .net
                    .audit(
                        &child.name,
                        &after.id,
                        "collections",
                        &json!({"collections": [collection_handles(&after), collection_handles(&parent_p)]}),
                        &j.cause,
                    )
                    .await?;
            }
            // Step 3: variants new to the link get the network's stock.
            for (pv, cv) in &fresh {
                let want = match self
                    .inner
                    .net
                    .level(&parent_name, &pv.inventory_item_id)
                    .await?
                {
                    Some((e, _)) => e,
                    None => pv.available.unwrap_or(0),
                };
                let key = format!("copy:{}:{}", child.name, cv.inventory_item_id);
                self.write_stock(
                    &child,
                    &shop,
                    &cv.inventory_item_id,
                    want,
                    cv.available,
                    &key,
                    &j.cause,
                )
                .await?;
            }
            Ok::<(), SyncError>(())
        };
        if let Err(e) = later_steps.await {
            if !e.is_permanent() {
                return Err(e);
            }
            // For good: undo step 1, so the child is left as it was.
            let undo = match &existing {
                None => shop.archive(&after.id).await.map(|_| "archive"),
                Some(before) => shop
                    .upsert(Some(&before.id), &restore(before))
                    .await
                    .map(|_| "restore"),
            };
            let undone = undo.is_ok();
            self.inner
                .net
                .audit(
                    &child.name,
                    &after.id,
                    "compensate",
                    &json!({"undo": undo.unwrap_or("failed"), "error": e.to_string()}),
                    &j.cause,
                )
                .await?;
            self.inner
                .net
                .set_link(
                    &child.name,
                    &j.product,
                    if created { None } else { Some(&after.id) },
                    if created { "failed" } else { "linked" },
                    0,
                )
                .await?;
            return Err(if undone {
                SyncError::Compensated(e.to_string())
            } else {
                e
            });
        }
        self.inner
            .net
            .replace_variant_links(&child.name, &j.product, &links)
            .await?;
        self.inner
            .net
            .set_link(
                &child.name,
                &j.product,
                Some(&after.id),
                "linked",
                parent_p.updated_at,
            )
            .await?;
        Ok(())
    }

    /// The child's copy of a parent collection: remembered, found by handle, or made.
    async fn child_collection(
        &self,
        child: &StoreConfig,
        shop: &ShopifyConnector,
        pc: &ferry_connect::shopify::model::Collection,
    ) -> Result<String, SyncError> {
        let known: Option<(String,)> = ferry_db::row!(
            self.db(),
            (String,),
            "SELECT collection FROM ferry_collections WHERE child = $1 AND handle = $2",
            &child.name,
            &pc.handle
        )?;
        if let Some((id,)) = known {
            return Ok(id);
        }
        let c = match shop.collection_by_handle(&pc.handle).await? {
            Some(c) => c,
            None => {
                let c = match shop.create_collection(&pc.title, &pc.handle).await {
                    Ok(c) => c,
                    // Another push made it meanwhile: use that one.
                    Err(e) if handle_taken(&e) => shop
                        .collection_by_handle(&pc.handle)
                        .await?
                        .ok_or(SyncError::Connect(e))?,
                    Err(e) => return Err(e.into()),
                };
                self.inner
                    .net
                    .audit(
                        &child.name,
                        &c.id,
                        "create_collection",
                        &json!({"handle": [Value::Null, pc.handle]}),
                        "collection membership",
                    )
                    .await?;
                c
            }
        };
        exec!(
            self.db(),
            "INSERT INTO ferry_collections (child, handle, collection) VALUES ($1, $2, $3)
             ON CONFLICT (child, handle) DO UPDATE SET collection = $3",
            &child.name,
            &pc.handle,
            &c.id
        )?;
        Ok(c.id)
    }

    async fn archive_copy(
        &self,
        child: &StoreConfig,
        shop: &ShopifyConnector,
        link: Option<crate::network::Link>,
        cause: &str,
    ) -> Result<(), SyncError> {
        let Some(l) = link else { return Ok(()) };
        let Some(copy) = l.child_product.as_deref() else {
            return Ok(());
        };
        if l.state == "archived" {
            return Ok(());
        }
        // Archived, not deleted: reversible, and the child's order history keeps its product.
        shop.archive(copy).await?;
        self.inner
            .net
            .audit(
                &child.name,
                copy,
                "archive",
                &json!({"status": [Value::Null, "ARCHIVED"]}),
                cause,
            )
            .await?;
        self.inner
            .net
            .set_link(
                &child.name,
                &l.parent_product,
                Some(copy),
                "archived",
                l.parent_updated,
            )
            .await
    }

    // ---- stock ------------------------------------------------------------------------

    /// Records the intent of a write to a store's stock (before the write: its webhook is
    /// then known as an echo).
    async fn intend(
        &self,
        key: &str,
        store: &str,
        item: &str,
        kind: &str,
        amount: i64,
    ) -> Result<(), SyncError> {
        exec!(
            self.db(),
            "INSERT INTO ferry_intents (key, store, item, kind, amount, state, created_ms)
             VALUES ($1, $2, $3, $4, $5, 'pending', $6) ON CONFLICT (key, store, item) DO NOTHING",
            key,
            store,
            item,
            kind,
            amount,
            self.now_ms()
        )?;
        Ok(())
    }

    /// Marks an intent applied and moves what ferry believes the store holds, once.
    async fn applied(
        &self,
        key: &str,
        store: &str,
        item: &str,
        set_to: Option<i64>,
        delta: i64,
    ) -> Result<bool, SyncError> {
        let mut tx = self.inner.queue.begin().await?;
        let n = tx_exec!(
            tx,
            "UPDATE ferry_intents SET state = 'applied' WHERE key = $1 AND store = $2 AND item = $3 AND state = 'pending'",
            key,
            store,
            item
        )?;
        if n == 1 {
            let now = self.now_ms();
            match set_to {
                Some(q) => tx_exec!(
                    tx,
                    "INSERT INTO ferry_levels (store, item, expected, updated_ms) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (store, item) DO UPDATE SET expected = $3, updated_ms = $4",
                    store,
                    item,
                    q,
                    now
                )?,
                None => tx_exec!(
                    tx,
                    "UPDATE ferry_levels SET expected = expected + $3, updated_ms = $4 WHERE store = $1 AND item = $2",
                    store,
                    item,
                    delta,
                    now
                )?,
            };
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Sets a store's stock of an item with compare-and-set (`believed`: what it is thought
    /// to hold now), through the intent ledger, and audits it.
    #[allow(clippy::too_many_arguments)]
    async fn write_stock(
        &self,
        store: &StoreConfig,
        shop: &ShopifyConnector,
        item: &str,
        quantity: i64,
        believed: Option<i64>,
        key: &str,
        cause: &str,
    ) -> Result<(), SyncError> {
        if believed == Some(quantity) {
            self.inner
                .net
                .set_level(&store.name, item, quantity)
                .await?;
            return Ok(());
        }
        self.intend(key, &store.name, item, "set", quantity).await?;
        shop.set_inventory(item, &store.location_id, quantity, believed)
            .await?;
        if self
            .applied(key, &store.name, item, Some(quantity), 0)
            .await?
        {
            self.inner
                .net
                .audit(
                    &store.name,
                    item,
                    "set_stock",
                    &json!({"available": [believed, quantity], "key": key}),
                    cause,
                )
                .await?;
        }
        Ok(())
    }

    async fn orders(&self, j: StoreJob) -> Result<(), SyncError> {
        let store = self.inner.net.store(&j.store).await?;
        self.catch_up_orders(&store).await.map(|_| ())
    }

    /// Reads a store's orders after the last one counted and counts each new one once.
    async fn catch_up_orders(&self, store: &StoreConfig) -> Result<usize, SyncError> {
        let shop = self.shop(store).await?;
        let mark = self.inner.net.order_mark(&store.name).await?;
        let mut cursor: Option<String> = None;
        let mut counted = 0;
        loop {
            let (orders, next) = shop.orders_after(mark, cursor.as_deref()).await?;
            for o in &orders {
                if self.count_sale(store, o).await? {
                    counted += 1;
                }
            }
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(counted)
    }

    /// One order: the first path to see it inserts its row and, in the same transaction,
    /// lowers what ferry believes the selling store holds and enqueues one delta per other
    /// store, each with an idempotency key derived from the order.
    async fn count_sale(&self, store: &StoreConfig, o: &Order) -> Result<bool, SyncError> {
        let parent = self.inner.net.parent().await?;
        let mut own: BTreeMap<String, i64> = BTreeMap::new();
        let mut others: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for line in &o.lines {
            let Some(variant) = &line.variant_id else {
                continue;
            };
            let parent_variant = if store.name == parent.name {
                Some(variant.clone())
            } else {
                self.inner
                    .net
                    .by_child_variant(&store.name, variant)
                    .await?
                    .map(|l| l.parent_variant)
            };
            let Some(pv) = parent_variant else {
                tracing::debug!(store = %store.name, variant = %variant, "sold a variant outside the network");
                continue;
            };
            let copies = self.inner.net.copies_of(&pv).await?;
            let Some(first) = copies.first() else {
                continue;
            };
            let mut pool = vec![(parent.name.clone(), first.parent_item.clone())];
            pool.extend(
                copies
                    .iter()
                    .map(|c| (c.child.clone(), c.child_item.clone())),
            );
            for (s, item) in pool {
                if s == store.name {
                    *own.entry(item).or_default() -= line.quantity;
                } else {
                    *others.entry(s).or_default().entry(item).or_default() -= line.quantity;
                }
            }
        }
        let now = self.now_ms();
        let mut tx = self.inner.queue.begin().await?;
        let new = tx_exec!(
            tx,
            "INSERT INTO ferry_sales (store, order_id, created_ms) VALUES ($1, $2, $3) ON CONFLICT (store, order_id) DO NOTHING",
            &store.name,
            &o.id,
            now
        )?;
        let number = o.number as i64;
        tx_exec!(
            tx,
            "INSERT INTO ferry_order_marks (store, number) VALUES ($1, $2)
             ON CONFLICT (store) DO UPDATE SET number = CASE WHEN excluded.number > ferry_order_marks.number THEN excluded.number ELSE ferry_order_marks.number END",
            &store.name,
            number
        )?;
        if new == 0 {
            tx.commit().await?;
            return Ok(false);
        }
        for (item, delta) in &own {
            tx_exec!(
                tx,
                "UPDATE ferry_levels SET expected = expected + $3, updated_ms = $4 WHERE store = $1 AND item = $2",
                &store.name,
                item,
                *delta,
                now
            )?;
        }
        let mut jobs = Vec::new();
        for (target, changes) in others {
            let job = AdjustJob {
                store: target.clone(),
                key: format!("sale:{}:{}:{target}", store.name, o.number),
                changes: changes.into_iter().collect(),
                cause: format!("order {} in {}", o.id, store.name),
                counted: false,
            };
            jobs.push(self.delta_job(&mut tx, &job, now).await?);
        }
        tx.enqueue_batch(jobs).await?;
        tx.commit().await?;
        metrics::counter!("ferry_sync_sales_total").increment(1);
        Ok(true)
    }

    async fn adjust(&self, j: AdjustJob) -> Result<(), SyncError> {
        let store = self.inner.net.store(&j.store).await?;
        let shop = self.shop(&store).await?;
        for (item, delta) in &j.changes {
            self.intend(&j.key, &store.name, item, "delta", *delta)
                .await?;
        }
        let changes: Vec<InventoryDelta> = j
            .changes
            .iter()
            .map(|(item, delta)| InventoryDelta {
                inventory_item_id: item.clone(),
                location_id: store.location_id.clone(),
                delta: *delta,
                change_from: None,
            })
            .collect();
        // The key makes a retry (or a redelivered order) apply once on the platform.
        shop.adjust_inventory(&j.key, "correction", &changes)
            .await?;
        for (item, delta) in &j.changes {
            let moves = if j.counted { 0 } else { *delta };
            if self.applied(&j.key, &store.name, item, None, moves).await? {
                self.inner
                    .net
                    .audit(
                        &store.name,
                        item,
                        "adjust_stock",
                        &json!({"delta": delta, "key": j.key}),
                        &j.cause,
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn level(&self, j: LevelJob) -> Result<(), SyncError> {
        let store = self.inner.net.store(&j.store).await?;
        let pool = self.inner.net.pool_of(&store.name, &j.item).await?;
        if pool.is_empty() {
            return Ok(());
        }
        if let Some(said) = j.available
            && self.ours(&store.name, &j.item, said).await?
        {
            metrics::counter!("ferry_sync_echoes_total").increment(1);
            return Ok(());
        }
        let shop = self.shop(&store).await?;
        let Some(current) = shop.available(&j.item, &store.location_id).await? else {
            return Ok(());
        };
        if self.explained(&store.name, &j.item, current).await? {
            metrics::counter!("ferry_sync_echoes_total").increment(1);
            return Ok(());
        }
        // Not ours: an order may explain it (its webhook late or lost), so count the store's
        // orders, then look again.
        self.catch_up_orders(&store).await?;
        if self.explained(&store.name, &j.item, current).await? {
            return Ok(());
        }
        let since = self.now_ms() - self.inner.opts.intent_ttl.as_millis() as i64;
        if !self
            .inner
            .net
            .pending(&store.name, &j.item, since)
            .await?
            .is_empty()
        {
            // One of ours is still landing: look again once it has.
            return Err(SyncError::Wait(Duration::from_millis(300)));
        }
        // A change no write of ours and no order explains: a stock count. The newest count
        // wins; the others get it by compare-and-set.
        let (parent_store, parent_item) = pool[0].clone();
        let pooled = self.inner.net.level(&parent_store, &parent_item).await?;
        let last_set = pooled.map(|(_, l)| l).unwrap_or(0);
        if j.at_ms < last_set {
            let winner = pooled.map(|(e, _)| e).unwrap_or(current);
            tracing::info!(store = %store.name, item = %j.item, "an older stock count lost to a newer one");
            let job = SetJob {
                store: store.name.clone(),
                item: j.item.clone(),
                quantity: winner,
                key: format!("lww:{}:{}:{}", store.name, j.item, j.at_ms),
                cause: format!("newer stock count wins over {}", store.name),
            };
            self.inner
                .queue
                .enqueue(self.sync_job(SET, &job, &store.name)?)
                .await?;
            return Ok(());
        }
        let now = self.now_ms();
        let key = format!("count:{}:{}:{}", store.name, j.item, j.at_ms);
        tracing::debug!(store = %store.name, item = %j.item, "level: a stock count");
        let mut tx = self.inner.queue.begin().await?;
        tx_exec!(
            tx,
            "UPDATE ferry_levels SET expected = $3, updated_ms = $4 WHERE store = $1 AND item = $2",
            &store.name,
            &j.item,
            current,
            now
        )?;
        let marked = tx_exec!(
            tx,
            "UPDATE ferry_levels SET last_set_ms = $3 WHERE store = $1 AND item = $2",
            &parent_store,
            &parent_item,
            j.at_ms
        )?;
        if marked == 0 {
            tx_exec!(
                tx,
                "INSERT INTO ferry_levels (store, item, expected, last_set_ms, updated_ms) VALUES ($1, $2, $3, $4, $5)",
                &parent_store,
                &parent_item,
                current,
                j.at_ms,
                now
            )?;
        }
        let mut jobs = Vec::new();
        for (s, item) in pool.iter().filter(|(s, _)| *s != store.name) {
            let job = SetJob {
                store: s.clone(),
                item: item.clone(),
                quantity: current,
                key: key.clone(),
                cause: format!("stock count in {}", store.name),
            };
            jobs.push(
                self.sync_job(SET, &job, s)?
                    .singleton(&format!("set:{s}:{item}"))
                    .replace(),
            );
        }
        tx.enqueue_batch(jobs).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether a level a webhook reported is one a write of ferry's made (applied or still
    /// landing): an echo, known without reading the store.
    async fn ours(&self, store: &str, item: &str, said: i64) -> Result<bool, SyncError> {
        Ok(self.inner.net.level(store, item).await?.is_some()
            && self.explained(store, item, said).await?)
    }

    /// Whether a store's level is what ferry believes, or what a write of ferry's still
    /// landing makes it (an echo). First sight of a level: remembered, explained.
    async fn explained(&self, store: &str, item: &str, current: i64) -> Result<bool, SyncError> {
        let Some((expected, _)) = self.inner.net.level(store, item).await? else {
            self.inner.net.set_level(store, item, current).await?;
            return Ok(true);
        };
        if current == expected {
            return Ok(true);
        }
        let since = self.now_ms() - self.inner.opts.intent_ttl.as_millis() as i64;
        let pending = self.inner.net.pending(store, item, since).await?;
        let deltas: i64 = pending
            .iter()
            .filter(|(k, _)| k == "delta")
            .map(|(_, a)| a)
            .sum();
        Ok(!pending.is_empty()
            && (current == expected + deltas
                || pending.iter().any(|(k, a)| k == "set" && *a == current)))
    }

    async fn set(&self, j: SetJob) -> Result<(), SyncError> {
        let store = self.inner.net.store(&j.store).await?;
        // Its sales first, so what ferry believes it holds is current for the compare.
        self.catch_up_orders(&store).await?;
        let shop = self.shop(&store).await?;
        let believed = self
            .inner
            .net
            .level(&store.name, &j.item)
            .await?
            .map(|(e, _)| e);
        self.write_stock(
            &store, &shop, &j.item, j.quantity, believed, &j.key, &j.cause,
        )
        .await
    }

    // ---- connecting ---------------------------------------------------------------------

    async fn connect(&self, j: StoreJob) -> Result<(), SyncError> {
        let store = self.inner.net.store(&j.store).await?;
        if store.role == Role::Child {
            let parent = self.inner.net.parent().await?;
            if parent.state != "connected" {
                return Err(SyncError::Wait(Duration::from_secs(1)));
            }
        }
        let shop = self.shop(&store).await?;
        let location = shop
            .locations()
            .await?
            .into_iter()
            .next()
            .map(|(id, _)| id)
            .ok_or_else(|| SyncError::Invalid(format!("{} has no location", store.name)))?;
        let topics: &[&str] = match store.role {
            Role::Parent => &[
                "PRODUCTS_CREATE",
                "PRODUCTS_UPDATE",
                "PRODUCTS_DELETE",
                "ORDERS_CREATE",
                "INVENTORY_LEVELS_UPDATE",
            ],
            Role::Child => &["ORDERS_CREATE", "INVENTORY_LEVELS_UPDATE"],
        };
        let uri = format!(
            "{}/webhooks/shopify/{}",
            self.inner.opts.public_url.trim_end_matches('/'),
            store.name
        );
        if store.state != "connected" {
            for t in topics {
                shop.subscribe(t, &uri).await?;
            }
        }
        // Orders placed before the store joined are history, not sales to move.
        self.skip_old_orders(&store, &shop).await?;
        let mut store = store;
        store.location_id = location.clone();
        self.inner.net.set_connected(&store.name, &location).await?;
        self.shops().remove(&store.name);
        match store.role {
            Role::Child => self.link_catalog(&store).await?,
            Role::Parent => self.index_skus(&store).await?,
        }
        Ok(())
    }

    async fn skip_old_orders(
        &self,
        store: &StoreConfig,
        shop: &ShopifyConnector,
    ) -> Result<(), SyncError> {
        let mark = self.inner.net.order_mark(&store.name).await?;
        let mut cursor: Option<String> = None;
        let mut newest = mark;
        loop {
            let (orders, next) = shop.orders_after(mark, cursor.as_deref()).await?;
            newest = orders.iter().map(|o| o.number).fold(newest, u64::max);
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        if newest > mark {
            exec!(
                self.db(),
                "INSERT INTO ferry_order_marks (store, number) VALUES ($1, $2)
                 ON CONFLICT (store) DO UPDATE SET number = $2",
                &store.name,
                newest as i64
            )?;
        }
        Ok(())
    }

    /// Streams a store's catalog into the SKU index, a page at a time.
    async fn index_skus(&self, store: &StoreConfig) -> Result<(), SyncError> {
        let shop = self.shop(store).await?;
        exec!(
            self.db(),
            "DELETE FROM ferry_skus WHERE store = $1",
            &store.name
        )?;
        let mut cursor: Option<String> = None;
        loop {
            let (page, next) = shop.products_updated_since(None, cursor.as_deref()).await?;
            for p in &page {
                self.remember_skus(&store.name, p).await?;
            }
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(())
    }

    async fn remember_skus(&self, store: &str, p: &Product) -> Result<(), SyncError> {
        for v in &p.variants {
            let Some(sku) = v.sku.as_deref().filter(|s| !s.trim().is_empty()) else {
                continue;
            };
            exec!(
                self.db(),
                "INSERT INTO ferry_skus (store, sku, variant, item, product, available) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (store, sku, variant) DO NOTHING",
                store,
                sku.to_lowercase(),
                &v.id,
                &v.inventory_item_id,
                &p.id,
                v.available
            )?;
        }
        Ok(())
    }

    async fn problem(
        &self,
        child: &str,
        product: &str,
        sku: &str,
        reason: &str,
    ) -> Result<(), SyncError> {
        exec!(
            self.db(),
            "INSERT INTO ferry_link_problems (child, parent_product, sku, reason, at_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (child, parent_product, sku) DO UPDATE SET reason = $4, at_ms = $5",
            child,
            product,
            sku,
            reason,
            self.now_ms()
        )?;
        Ok(())
    }

    /// Links a child's existing products to the parent's by SKU and copies over the rest.
    /// Ambiguous matches (a blank SKU, a SKU on several variants, variants split over several
    /// products) are refused and listed in `ferry_link_problems`, never guessed.
    async fn link_catalog(&self, child: &StoreConfig) -> Result<(), SyncError> {
        let started_ms = self.now_ms();
        let parent = self.inner.net.parent().await?;
        // The parent's index is rebuilt by the parent's own connect; children connecting at
        // once share it (and add what the parent gained since, below).
        self.index_skus(child).await?;
        exec!(
            self.db(),
            "DELETE FROM ferry_link_problems WHERE child = $1",
            &child.name
        )?;
        let pshop = self.shop(&parent).await?;
        let cause = format!("connect {}", child.name);
        let mut cursor: Option<String> = None;
        let (mut linked, mut missing, mut refused) = (0u64, 0u64, 0u64);
        loop {
            let (page, next) = pshop
                .products_updated_since(None, cursor.as_deref())
                .await?;
            let mut jobs = Vec::new();
            for p in &page {
                self.remember_skus(&parent.name, p).await?;
            }
            for p in page {
                self.note_parent_levels(&parent.name, &p).await?;
                if self
                    .inner
                    .net
                    .link(&child.name, &p.id)
                    .await?
                    .is_some_and(|l| l.state == "linked")
                {
                    linked += 1;
                    continue;
                }
                let mut matches: Vec<(String, String, String, Option<i64>)> = Vec::new();
                let mut problem = None;
                for v in &p.variants {
                    let Some(sku) = v.sku.as_deref().filter(|s| !s.trim().is_empty()) else {
                        problem = Some((String::new(), "blank_sku"));
                        break;
                    };
                    let sku = sku.to_lowercase();
                    let in_parent: Vec<(String,)> = rows!(
                        self.db(),
                        (String,),
                        "SELECT variant FROM ferry_skus WHERE store = $1 AND sku = $2",
                        &parent.name,
                        &sku
                    )?;
                    if in_parent.len() > 1 {
                        problem = Some((sku, "duplicate_sku_in_parent"));
                        break;
                    }
                    let found: Vec<(String, String, String, Option<i64>)> = rows!(
                        self.db(),
                        (String, String, String, Option<i64>),
                        "SELECT variant, item, product, available FROM ferry_skus WHERE store = $1 AND sku = $2",
                        &child.name,
                        &sku
                    )?;
                    match found.len() {
                        0 => {}
                        1 => matches.extend(found),
                        _ => {
                            problem = Some((sku, "duplicate_sku_in_child"));
                            break;
                        }
                    }
                }
                let mut products: Vec<&String> = matches.iter().map(|m| &m.2).collect();
                products.sort();
                products.dedup();
                if problem.is_none() && products.len() > 1 {
                    problem = Some((String::new(), "variants_on_several_products"));
                }
                if let Some((sku, reason)) = problem {
                    refused += 1;
                    self.problem(&child.name, &p.id, &sku, reason).await?;
                    continue;
                }
                if let Some(copy) = products.first() {
                    // An existing copy: linked; the push then applies the parent's fields
                    // and stock (the parent is the network's truth at connect).
                    linked += 1;
                    for (variant, item, _, available) in &matches {
                        if let Some(a) = available {
                            self.inner.net.set_level(&child.name, item, *a).await?;
                        }
                        let _ = variant;
                    }
                    self.inner
                        .net
                        .set_link(&child.name, &p.id, Some(copy), "linked", 0)
                        .await?;
                } else {
                    missing += 1;
                }
                jobs.push(self.push_job(&child.name, &p.id, Some(p.clone()), &cause)?);
            }
            self.inner.queue.enqueue_batch(jobs).await?;
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        tracing::info!(child = %child.name, linked, missing, refused, "catalog linked by SKU");
        // Connecting was a full pass: the next incremental reconciliation starts from here.
        exec!(
            self.db(),
            "INSERT INTO ferry_sync_runs (id, child, full_pass, state, started_ms, finished_ms, checked, created, cursor_ms)
             VALUES ($1, $2, 1, 'done', $3, $4, $5, $6, $3)",
            uuid::Uuid::now_v7().to_string(),
            &child.name,
            started_ms,
            self.now_ms(),
            (linked + missing + refused) as i64,
            missing as i64
        )?;
        self.inner
            .net
            .audit(
                &child.name,
                "catalog",
                "connect",
                &json!({"linked": linked, "copied": missing, "refused": refused}),
                &cause,
            )
            .await?;
        Ok(())
    }

    /// Parent products a child's catalog could not be linked for, and why.
    pub async fn link_problems(
        &self,
        child: &str,
    ) -> Result<Vec<(String, String, String)>, SyncError> {
        Ok(rows!(
            self.db(),
            (String, String, String),
            "SELECT parent_product, sku, reason FROM ferry_link_problems WHERE child = $1 ORDER BY parent_product, sku",
            child
        )?)
    }

    // ---- reconciliation -----------------------------------------------------------------

    async fn reconcile(&self, j: ReconcileJob) -> Result<(), SyncError> {
        let children = match &j.child {
            Some(c) => vec![self.inner.net.store(c).await?],
            None => self.inner.net.children().await?,
        };
        for child in children.into_iter().filter(|c| c.state == "connected") {
            self.reconcile_child(&child, j.full, &mut |_| {}).await?;
        }
        Ok(())
    }

    /// Compares a child with the parent (every product with `full`, else those changed since
    /// the last run), repairs what drifted through the same write path, and records the run.
    /// `progress` sees the number of products checked so far.
    pub async fn reconcile_child(
        &self,
        child: &StoreConfig,
        full: bool,
        progress: &mut (dyn FnMut(i64) + Send),
    ) -> Result<RunReport, SyncError> {
        let parent = self.inner.net.parent().await?;
        let since: Option<i64> = if full {
            None
        } else {
            self.last_cursor(&child.name).await?
        };
        let mut run = RunReport {
            id: uuid::Uuid::now_v7().to_string(),
            child: child.name.clone(),
            full_pass: i64::from(full),
            state: "running".into(),
            started_ms: self.now_ms(),
            cursor_ms: since.unwrap_or(0),
            ..RunReport::default()
        };
        exec!(
            self.db(),
            "INSERT INTO ferry_sync_runs (id, child, full_pass, state, started_ms, cursor_ms) VALUES ($1, $2, $3, $4, $5, $6)",
            &run.id,
            &run.child,
            run.full_pass,
            &run.state,
            run.started_ms,
            run.cursor_ms
        )?;
        let outcome = self
            .reconcile_pass(&parent, child, since, &mut run, progress)
            .await;
        run.finished_ms = Some(self.now_ms());
        run.state = if outcome.is_ok() { "done" } else { "failed" }.into();
        run.error = outcome.as_ref().err().map(|e| e.to_string());
        exec!(
            self.db(),
            "UPDATE ferry_sync_runs SET state = $2, finished_ms = $3, checked = $4, created = $5, updated = $6, stock_fixed = $7, cursor_ms = $8, error = $9 WHERE id = $1",
            &run.id,
            &run.state,
            run.finished_ms,
            run.checked,
            run.created,
            run.updated,
            run.stock_fixed,
            run.cursor_ms,
            &run.error
        )?;
        outcome.map(|_| run)
    }

    async fn last_cursor(&self, child: &str) -> Result<Option<i64>, SyncError> {
        let r: Vec<(i64,)> = rows!(
            self.db(),
            (i64,),
            "SELECT cursor_ms FROM ferry_sync_runs WHERE child = $1 AND state = 'done' ORDER BY started_ms DESC LIMIT 1",
            child
        )?;
        Ok(r.first().map(|(c,)| *c).filter(|c| *c > 0))
    }

    async fn reconcile_pass(
        &self,
        parent: &StoreConfig,
        child: &StoreConfig,
        since: Option<i64>,
        run: &mut RunReport,
        progress: &mut (dyn FnMut(i64) + Send),
    ) -> Result<(), SyncError> {
        // Sales first on both sides, so stock compares against counted orders.
        self.catch_up_orders(parent).await?;
        self.catch_up_orders(child).await?;
        let pshop = self.shop(parent).await?;
        let cshop = self.shop(child).await?;
        let cause = format!("reconcile {}", run.id);
        let stale = self.now_ms() - self.inner.opts.intent_ttl.as_millis() as i64;
        let mut cursor: Option<String> = None;
        loop {
            let (page, next) = pshop
                .products_updated_since(since, cursor.as_deref())
                .await?;
            let mut jobs = Vec::new();
            // The page's copies are read at once (the page bounds both memory and requests
            // in flight).
            let mut links = Vec::with_capacity(page.len());
            for p in &page {
                links.push(self.inner.net.link(&child.name, &p.id).await?);
            }
            let copies = futures_util::future::join_all(links.iter().map(|link| async {
                match link.as_ref().and_then(|l| l.child_product.as_deref()) {
                    Some(id) if link.as_ref().is_some_and(|l| l.state == "linked") => {
                        cshop.product(id).await
                    }
                    _ => Ok(None),
                }
            }))
            .await;
            for (p, copy) in page.into_iter().zip(copies) {
                let copy = copy?;
                run.checked += 1;
                run.cursor_ms = run.cursor_ms.max(p.updated_at);
                self.note_parent_levels(&parent.name, &p).await?;
                let needs_push = match &copy {
                    None => {
                        run.created += 1;
                        true
                    }
                    Some(c)
                        if !satisfied(&plan(&p, &child.rules, Some(c)), c)
                            || !collections_match(&p, &child.rules, c) =>
                    {
                        run.updated += 1;
                        true
                    }
                    Some(_) => false,
                };
                if needs_push {
                    jobs.push(self.push_job(&child.name, &p.id, Some(p.clone()), &cause)?);
                }
                let Some(c) = copy else { continue };
                for l in self.inner.net.variant_links(&child.name, &p.id).await? {
                    let want = p
                        .variants
                        .iter()
                        .find(|v| v.id == l.parent_variant)
                        .and_then(|v| v.available);
                    let have = c
                        .variants
                        .iter()
                        .find(|v| v.id == l.child_variant)
                        .and_then(|v| v.available);
                    let (Some(want), Some(have)) = (want, have) else {
                        continue;
                    };
                    // Skipped when ferry wrote either side lately: the snapshot read may
                    // not show it yet (the next pass looks again).
                    if want == have
                        || self
                            .inner
                            .net
                            .touched_since(&child.name, &l.child_item, run.started_ms, stale)
                            .await?
                        || self
                            .inner
                            .net
                            .touched_since(&parent.name, &l.parent_item, run.started_ms, stale)
                            .await?
                    {
                        continue;
                    }
                    run.stock_fixed += 1;
                    // What the child really holds, so the compare-and-set compares with it.
                    self.inner
                        .net
                        .set_level(&child.name, &l.child_item, have)
                        .await?;
                    self.inner
                        .net
                        .set_level(&parent.name, &l.parent_item, want)
                        .await?;
                    let job = SetJob {
                        store: child.name.clone(),
                        item: l.child_item.clone(),
                        quantity: want,
                        key: format!("reconcile:{}:{}", run.id, l.child_item),
                        cause: cause.clone(),
                    };
                    jobs.push(
                        self.sync_job(SET, &job, &child.name)?
                            .singleton(&format!("set:{}:{}", child.name, l.child_item))
                            .replace(),
                    );
                }
            }
            self.inner.queue.enqueue_batch(jobs).await?;
            progress(run.checked);
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(())
    }

    /// Reconciliation runs, newest first.
    pub async fn runs(&self, limit: i64) -> Result<Vec<RunReport>, SyncError> {
        Ok(rows!(
            self.db(),
            RunReport,
            "SELECT id, child, full_pass, state, started_ms, finished_ms, checked, created, updated, stock_fixed, cursor_ms, error
             FROM ferry_sync_runs ORDER BY started_ms DESC, id DESC LIMIT $1",
            limit
        )?)
    }

    /// Whether any sync work is waiting or running (the demo and tests wait for quiet).
    pub async fn busy(&self) -> Result<bool, SyncError> {
        for q in Self::queues() {
            let s = self.inner.queue.stats(q).await?;
            if s.ready + s.scheduled + s.running > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
