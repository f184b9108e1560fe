//! The sync engine's job payloads, defined once: each names its kind and queue (`impl Job`),
//! so the code that enqueues a job and the handler that runs it share one type.

use ferry_connect::shopify::model::Product;
use ferry_queue::Job;
use serde::{Deserialize, Serialize};

/// The queue every sync job waits in (grouped by the store it writes to).
pub const SYNC_QUEUE: &str = "sync";

/// The queue of the orders' recovery and void jobs.
pub const ORDERS_QUEUE: &str = "orders";

/// A parent product changed: read it once and fan out a push per child.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProductJob {
    pub product: String,
    pub cause: String,
}

/// Makes a child's copy of a parent product what the rules say (one waiting per child and
/// product; a newer snapshot replaces it).
#[derive(Debug, Serialize, Deserialize)]
pub struct PushJob {
    pub child: String,
    pub product: String,
    /// The parent product when the fan-out read it; `None`: deleted in the parent.
    pub snapshot: Option<Product>,
    pub cause: String,
}

/// Reads a store's new orders and counts each sale once.
#[derive(Debug, Serialize, Deserialize)]
pub struct OrdersJob {
    pub store: String,
    pub cause: String,
}

/// Connects a store: webhooks, location; for a child, linking its catalog by SKU.
#[derive(Debug, Serialize, Deserialize)]
pub struct ConnectJob {
    pub store: String,
    pub cause: String,
}

/// Moves a store's stock by deltas under one idempotency key (a sale made elsewhere).
#[derive(Debug, Serialize, Deserialize)]
pub struct AdjustJob {
    pub store: String,
    pub key: String,
    /// (inventory item, delta)
    pub changes: Vec<(String, i64)>,
    pub cause: String,
    /// ferry's belief of the store's level already counts the delta (an order taken by the
    /// orders API moves the parent's expected level when it is confirmed).
    #[serde(default)]
    pub counted: bool,
}

/// Checks a stock change a store reported: an echo of ferry's, a sale, or a stock count.
#[derive(Debug, Serialize, Deserialize)]
pub struct LevelJob {
    pub store: String,
    pub item: String,
    /// When the store says the level changed (last write wins between stock counts).
    pub at_ms: i64,
    /// What the webhook said the level is: when a write of ferry's explains it, the job
    /// ends without a read (an echo); otherwise the store is read.
    #[serde(default)]
    pub available: Option<i64>,
}

/// Sets a store's stock of an item by compare-and-set (a stock count made elsewhere, or a
/// repair).
#[derive(Debug, Serialize, Deserialize)]
pub struct SetJob {
    pub store: String,
    pub item: String,
    pub quantity: i64,
    pub key: String,
    pub cause: String,
}

/// Compares one child (or every child) with the parent and repairs drift.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReconcileJob {
    /// One child, or every child.
    pub child: Option<String>,
    pub full: bool,
}

/// Finishes (or undoes) an order whose server stopped mid-way; enqueued with the order.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecoverOrderJob {
    pub order: String,
}

/// Gives back the charge of an order that failed after its charge may have gone through.
#[derive(Debug, Serialize, Deserialize)]
pub struct VoidOrderJob {
    pub order: String,
}

/// Names each payload's kind and queue.
macro_rules! jobs {
    ($($t:ty => $kind:literal in $queue:expr;)+) => {
        $(impl Job for $t {
            const KIND: &'static str = $kind;
            const QUEUE: &'static str = $queue;
        })+
    };
}

jobs! {
    ProductJob => "sync.product" in SYNC_QUEUE;
    PushJob => "sync.push" in SYNC_QUEUE;
    OrdersJob => "sync.orders" in SYNC_QUEUE;
    AdjustJob => "sync.adjust" in SYNC_QUEUE;
    LevelJob => "sync.level" in SYNC_QUEUE;
    SetJob => "sync.set" in SYNC_QUEUE;
    ConnectJob => "sync.connect" in SYNC_QUEUE;
    ReconcileJob => "sync.reconcile" in SYNC_QUEUE;
    RecoverOrderJob => "orders.recover" in ORDERS_QUEUE;
    VoidOrderJob => "orders.void" in ORDERS_QUEUE;
}
