//! What a store holds: products, variants, inventory items and levels, locations, collections,
//! orders, files, and the catalog that owns them with its indexes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::{Value, json};

/// Quantities must stay within this on Shopify (InventorySetQuantitiesUserErrorCode).
pub const QUANTITY_LIMIT: i64 = 1_000_000_000;
/// Shopify's variant limit per product.
pub const MAX_VARIANTS: usize = 2048;

#[derive(Debug, Clone)]
pub(crate) struct Product {
    pub id: u64,
    pub title: String,
    pub handle: String,
    pub status: String,
    pub vendor: String,
    pub product_type: String,
    pub tags: Vec<String>,
    pub description_html: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Option names with their values, in order.
    pub options: Vec<(String, Vec<String>)>,
    pub variants: Vec<u64>,
    pub collections: BTreeSet<u64>,
    /// Its images, in order: ids of files in the store's library.
    pub media: Vec<u64>,
}

impl Product {
    /// An active product with nothing on it yet, made at `now`.
    pub(crate) fn new(id: u64, title: String, handle: String, now: i64) -> Product {
        Product {
            id,
            title,
            handle,
            status: "ACTIVE".into(),
            vendor: String::new(),
            product_type: String::new(),
            tags: Vec::new(),
            description_html: String::new(),
            created_at: now,
            updated_at: now,
            options: Vec::new(),
            variants: Vec::new(),
            collections: BTreeSet::new(),
            media: Vec::new(),
        }
    }
}

/// An image in the store's Files library. A product shows the ones attached to it; one taken
/// off a product stays in the library, and its id can attach it again (as on Shopify).
#[derive(Debug, Clone)]
pub(crate) struct MediaFile {
    pub id: u64,
    pub alt: String,
    /// Unique in the store: a second upload of a name gets a suffix (`APPEND_UUID`).
    pub filename: String,
    /// Where the platform serves it (its CDN), not where it was uploaded from.
    pub url: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Variant {
    pub id: u64,
    pub product_id: u64,
    pub sku: Option<String>,
    pub price: String,
    pub compare_at_price: Option<String>,
    /// (option name, value)
    pub options: Vec<(String, String)>,
    pub inventory_item_id: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Variant {
    pub fn title(&self) -> String {
        self.options
            .iter()
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(" / ")
    }
}

#[derive(Debug, Clone)]
pub(crate) struct InventoryItem {
    pub id: u64,
    pub variant_id: u64,
    pub tracked: bool,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Level {
    pub available: i64,
    pub committed: i64,
    pub updated_at: i64,
}

impl Level {
    pub fn on_hand(&self) -> i64 {
        self.available + self.committed
    }

    /// A named quantity (`available`, `on_hand`, `committed`; the others are always 0 here).
    pub fn quantity(&self, name: &str) -> Option<i64> {
        match name {
            "available" => Some(self.available),
            "on_hand" => Some(self.on_hand()),
            "committed" => Some(self.committed),
            "reserved" | "incoming" | "damaged" | "quality_control" | "safety_stock" => Some(0),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Location {
    pub id: u64,
    pub name: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Collection {
    pub id: u64,
    pub title: String,
    pub handle: String,
    pub products: BTreeSet<u64>,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct LineItem {
    pub id: u64,
    pub variant_id: u64,
    pub product_id: u64,
    pub sku: Option<String>,
    pub title: String,
    pub quantity: i64,
    pub price: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Order {
    pub id: u64,
    pub name: String,
    pub created_at: i64,
    pub location_id: u64,
    pub lines: Vec<LineItem>,
}

/// A rejected write: where in the input, what is wrong, and the platform's code for it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserError {
    pub field: Vec<String>,
    pub message: String,
    pub code: &'static str,
}

impl UserError {
    pub fn new(field: &[&str], code: &'static str, message: impl Into<String>) -> UserError {
        UserError {
            field: field.iter().map(|s| (*s).to_owned()).collect(),
            message: message.into(),
            code,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({ "field": self.field, "message": self.message, "code": self.code })
    }
}

/// What `product_set` was asked to do, in ferry's words (parsed from GraphQL input).
#[derive(Debug, Clone, Default)]
pub struct ProductSpec {
    pub title: Option<String>,
    pub handle: Option<String>,
    pub status: Option<String>,
    pub vendor: Option<String>,
    pub product_type: Option<String>,
    pub tags: Option<Vec<String>>,
    pub description_html: Option<String>,
    pub collections: Option<Vec<u64>>,
    pub options: Option<Vec<(String, Vec<String>)>>,
    pub variants: Option<Vec<VariantSpec>>,
    /// `files`: the product's whole image list (those left out are taken off it).
    pub files: Option<Vec<FileSpec>>,
}

impl ProductSpec {
    /// Only a new title (a merchant renaming a product).
    pub fn titled(title: impl Into<String>) -> ProductSpec {
        ProductSpec {
            title: Some(title.into()),
            ..ProductSpec::default()
        }
    }
}

/// One `FileSetInput`: an existing file by id, or a new one from a URL.
#[derive(Debug, Clone, Default)]
pub struct FileSpec {
    pub id: Option<u64>,
    pub source: Option<String>,
    pub alt: Option<String>,
    pub filename: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct VariantSpec {
    pub id: Option<u64>,
    pub options: Vec<(String, String)>,
    pub sku: Option<String>,
    pub price: Option<String>,
    pub compare_at_price: Option<Option<String>>,
    /// Available quantity per location, applied when the variant is created.
    pub quantities: Vec<(u64, i64)>,
}

/// One applied inventory change, as `InventoryAdjustmentGroup.changes` reports it.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub name: String,
    pub delta: i64,
    pub quantity_after: i64,
    pub item: u64,
    pub location: u64,
    pub ledger_document_uri: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct AdjustmentGroup {
    pub id: u64,
    pub created_at: i64,
    pub reason: String,
    pub reference_document_uri: Option<String>,
    pub changes: Vec<Change>,
}

/// One inventory change asked for: `change_from` is `None` when the key was omitted and
/// `Some(None)` for an explicit null (opting out of the check).
#[derive(Debug, Clone)]
pub struct QuantityChange {
    pub item: u64,
    pub location: u64,
    /// The delta (adjust) or the new value (set).
    pub amount: i64,
    pub change_from: Option<Option<i64>>,
    pub ledger_document_uri: Option<String>,
}

#[derive(Debug)]
pub(crate) struct Catalog {
    /// The shop's name, for `shop { name }` and webhook headers.
    pub shop: String,
    /// The shop's currency (ISO 4217), for `shop { currencyCode }`: prices are in it.
    pub currency: String,
    pub(crate) next_id: u64,
    pub products: BTreeMap<u64, Product>,
    /// (updated_at, id): the order of `sortKey: UPDATED_AT`.
    pub by_update: BTreeSet<(i64, u64)>,
    pub handles: HashMap<String, u64>,
    pub variants: BTreeMap<u64, Variant>,
    pub skus: HashMap<String, BTreeSet<u64>>,
    pub items: BTreeMap<u64, InventoryItem>,
    pub levels: BTreeMap<(u64, u64), Level>,
    pub locations: BTreeMap<u64, Location>,
    pub collections: BTreeMap<u64, Collection>,
    pub orders: BTreeMap<u64, Order>,
    pub files: BTreeMap<u64, MediaFile>,
    pub(crate) filenames: HashSet<String>,
    /// Webhooks to send once the write is done: (topic, payload).
    pub events: Vec<(&'static str, Value)>,
}

pub(crate) fn gid(kind: &str, id: u64) -> String {
    format!("gid://shopify/{kind}/{id}")
}

pub(crate) fn iso(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Prices as Shopify prints them: a decimal with two places.
/// A product as copied between stores: itself, its variants with their stock, its images.
pub(crate) type Exported = (Product, Vec<(Variant, i64)>, Vec<MediaFile>);

pub(crate) fn money(s: &str) -> Option<String> {
    let v: f64 = s.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| format!("{v:.2}"))
}

impl Catalog {
    /// An empty catalog whose ids start at `id_base` (distinct per store, so that an id from one
    /// store used against another is caught instead of silently hitting something).
    pub fn new(shop: &str, id_base: u64, locations: usize, now: i64) -> Catalog {
        let mut c = Catalog {
            shop: shop.to_owned(),
            currency: "EUR".to_owned(),
            next_id: id_base,
            products: BTreeMap::new(),
            by_update: BTreeSet::new(),
            handles: HashMap::new(),
            variants: BTreeMap::new(),
            skus: HashMap::new(),
            items: BTreeMap::new(),
            levels: BTreeMap::new(),
            locations: BTreeMap::new(),
            collections: BTreeMap::new(),
            orders: BTreeMap::new(),
            files: BTreeMap::new(),
            filenames: HashSet::new(),
            events: Vec::new(),
        };
        for n in 0..locations.max(1) {
            let id = c.id();
            let name = if n == 0 {
                "Shop location".to_owned()
            } else {
                format!("Warehouse {n}")
            };
            c.locations.insert(id, Location { id, name });
        }
        let _ = now;
        c
    }

    pub fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    pub fn default_location(&self) -> u64 {
        self.locations.keys().next().copied().unwrap_or_default()
    }
}
