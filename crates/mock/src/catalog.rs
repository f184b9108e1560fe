//! A store's catalog, inventory and orders, as Shopify models them: products own an ordered
//! list of variants; each variant has one inventory item; an inventory level is (item,
//! location) with quantities; collections hold products; orders take stock.
//!
//! Every write goes through a method here that validates first and changes nothing on error,
//! bumps `updated_at`, and queues the webhook the real platform would send.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use rand::{RngExt, SeedableRng};
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
    next_id: u64,
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
    filenames: HashSet<String>,
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

fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() {
        "product".into()
    } else {
        out
    }
}

/// Prices as Shopify prints them: a decimal with two places.
/// A product as copied between stores: itself, its variants with their stock, its images.
pub(crate) type Exported = (Product, Vec<(Variant, i64)>, Vec<MediaFile>);

/// The last segment of a URL's path, without its query.
pub(crate) fn basename(url: &str) -> Option<&str> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let rest = path.split_once("://").map_or(path, |(_, r)| r);
    let (_, name) = rest.rsplit_once('/')?;
    (!name.is_empty()).then_some(name)
}

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

    fn touch(&mut self, product: u64, now: i64) {
        if let Some(p) = self.products.get_mut(&product) {
            self.by_update.remove(&(p.updated_at, product));
            p.updated_at = now;
            self.by_update.insert((now, product));
        }
    }

    fn unique_handle(&self, base: &str) -> String {
        if !self.handles.contains_key(base) {
            return base.to_owned();
        }
        (1..)
            .map(|n| format!("{base}-{n}"))
            .find(|h| !self.handles.contains_key(h))
            .unwrap_or_else(|| base.to_owned())
    }

    fn index_sku(&mut self, sku: &Option<String>, variant: u64, add: bool) {
        let Some(sku) = sku.as_ref().filter(|s| !s.is_empty()) else {
            return;
        };
        // Lower-cased: SKU search is case-insensitive.
        let key = sku.to_lowercase();
        if add {
            self.skus.entry(key).or_default().insert(variant);
        } else if let Some(set) = self.skus.get_mut(&key) {
            set.remove(&variant);
            if set.is_empty() {
                self.skus.remove(&key);
            }
        }
    }

    /// Fills the catalog with `products` × `variants`, random but reproducible from `seed`.
    /// SKUs are `SKU-{n:06}-{v}` by position, so two stores seeded alike share SKUs (what a
    /// child store connected by SKU looks like). No webhooks: the store is being set up.
    pub fn seed(&mut self, seed: u64, products: usize, variants: usize, now: i64) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        const WORDS: [&str; 12] = [
            "Linen", "Wool", "Canvas", "Cotton", "Leather", "Denim", "Shirt", "Scarf", "Bag",
            "Jacket", "Cap", "Belt",
        ];
        const SIZES: [&str; 6] = ["XS", "S", "M", "L", "XL", "XXL"];
        let start = self.products.len();
        let locations: Vec<u64> = self.locations.keys().copied().collect();
        for n in start..start + products {
            let title = format!(
                "{} {} {}",
                WORDS[rng.random_range(0..6)],
                WORDS[rng.random_range(6..12)],
                n + 1
            );
            let handle = self.unique_handle(&slug(&title));
            let id = self.id();
            let count = variants.clamp(1, MAX_VARIANTS);
            let values: Vec<String> = (0..count)
                .map(|v| {
                    SIZES
                        .get(v)
                        .map(|s| (*s).to_owned())
                        .unwrap_or_else(|| format!("Size {}", v + 1))
                })
                .collect();
            let mut ids = Vec::with_capacity(count);
            for (v, value) in values.iter().enumerate() {
                let cents: u32 = rng.random_range(500..20_000);
                let spec = VariantSpec {
                    id: None,
                    options: vec![("Size".into(), value.clone())],
                    sku: Some(format!("SKU-{:06}-{}", n + 1, v + 1)),
                    price: Some(format!("{}.{:02}", cents / 100, cents % 100)),
                    compare_at_price: None,
                    quantities: locations
                        .iter()
                        .map(|l| (*l, rng.random_range(0..100)))
                        .collect(),
                };
                let vid = self.create_variant(id, &spec, now);
                ids.push(vid);
            }
            // 0, 1 or 2 images by position (not from the generator: the rest of the seed
            // stays as it was before images).
            let media = (0..n % 3)
                .map(|k| {
                    self.add_file(
                        &format!("{handle}-{}.jpg", k + 1),
                        &format!("{title}, view {}", k + 1),
                    )
                })
                .collect();
            self.handles.insert(handle.clone(), id);
            self.by_update.insert((now, id));
            self.products.insert(
                id,
                Product {
                    id,
                    title,
                    handle,
                    status: "ACTIVE".into(),
                    vendor: "ferry mock".into(),
                    product_type: String::new(),
                    tags: Vec::new(),
                    description_html: String::new(),
                    created_at: now,
                    updated_at: now,
                    options: vec![("Size".into(), values)],
                    variants: ids,
                    collections: BTreeSet::new(),
                    media,
                },
            );
        }
    }

    /// Products (with their variants and the stock at the first location) to copy into
    /// another store: (product, [(variant, available)]).
    pub(crate) fn export(&self) -> Vec<Exported> {
        let location = self.default_location();
        self.products
            .values()
            .map(|p| {
                let vs = p
                    .variants
                    .iter()
                    .filter_map(|v| self.variants.get(v))
                    .map(|v| {
                        let a = self
                            .levels
                            .get(&(v.inventory_item_id, location))
                            .map(|l| l.available)
                            .unwrap_or(0);
                        (v.clone(), a)
                    })
                    .collect();
                let files = p
                    .media
                    .iter()
                    .filter_map(|f| self.files.get(f))
                    .cloned()
                    .collect();
                (p.clone(), vs, files)
            })
            .collect()
    }

    /// Copies of another store's products (new ids, the same fields, SKUs and stock), each
    /// tagged `{tag_prefix}{source id}` when a prefix is given: a store that was already
    /// kept in line by a sync app, for benchmarks of steady-state reconciliation.
    pub(crate) fn import(&mut self, products: Vec<Exported>, tag_prefix: Option<&str>, now: i64) {
        let location = self.default_location();
        for (p, variants, files) in products {
            let id = self.id();
            let mut ids = Vec::with_capacity(variants.len());
            for (v, available) in &variants {
                let spec = VariantSpec {
                    id: None,
                    options: v.options.clone(),
                    sku: v.sku.clone(),
                    price: Some(v.price.clone()),
                    compare_at_price: Some(v.compare_at_price.clone()),
                    quantities: vec![(location, *available)],
                };
                ids.push(self.create_variant(id, &spec, now));
            }
            let handle = self.unique_handle(&p.handle);
            let mut tags = p.tags.clone();
            if let Some(prefix) = tag_prefix {
                tags.push(format!("{prefix}{}", p.id));
            }
            // A synced copy's images are named as ferry names the uploads it makes.
            let media = files
                .iter()
                .map(|f| match tag_prefix {
                    Some(_) => self.add_file(&format!("ferry-{}-{}", f.id, f.filename), &f.alt),
                    None => self.add_file(&f.filename, &f.alt),
                })
                .collect();
            self.handles.insert(handle.clone(), id);
            self.by_update.insert((now, id));
            self.products.insert(
                id,
                Product {
                    id,
                    handle,
                    tags,
                    created_at: now,
                    updated_at: now,
                    variants: ids,
                    collections: BTreeSet::new(),
                    media,
                    ..p
                },
            );
        }
    }

    /// `productSet`: creates or updates a product to match `spec`. List fields given are
    /// replaced (variants and collections left out are removed); scalars left out stay.
    /// Returns the product id and whether it was created.
    pub fn product_set(
        &mut self,
        target: Option<u64>,
        handle_target: Option<&str>,
        spec: ProductSpec,
        now: i64,
    ) -> Result<(u64, bool), Vec<UserError>> {
        let existing = match (target, handle_target) {
            (Some(id), _) => match self.products.contains_key(&id) {
                true => Some(id),
                false => {
                    return Err(vec![UserError::new(
                        &["identifier", "id"],
                        "PRODUCT_DOES_NOT_EXIST",
                        "Product does not exist",
                    )]);
                }
            },
            (None, Some(h)) => self.handles.get(h).copied(),
            (None, None) => None,
        };
        self.validate_spec(existing, &spec)?;
        let created = existing.is_none();
        let id = match existing {
            Some(id) => id,
            None => {
                let title = spec.title.clone().unwrap_or_default();
                let handle = match spec.handle.as_deref().or(handle_target) {
                    Some(h) => h.to_owned(),
                    None => self.unique_handle(&slug(&title)),
                };
                let id = self.id();
                self.handles.insert(handle.clone(), id);
                self.by_update.insert((now, id));
                self.products.insert(
                    id,
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
                    },
                );
                id
            }
        };
        self.apply_scalars(id, &spec);
        if let Some(cols) = &spec.collections {
            self.set_collections(id, cols, now);
        }
        if let Some(files) = &spec.files {
            self.set_media(id, files);
        }
        match spec.variants {
            Some(variants) => self.replace_variants(id, spec.options, variants, now),
            None if created => self.replace_variants(
                id,
                None,
                vec![VariantSpec {
                    options: vec![("Title".into(), "Default Title".into())],
                    price: Some("0.00".into()),
                    ..VariantSpec::default()
                }],
                now,
            ),
            None => {}
        }
        self.touch(id, now);
        let topic = if created {
            "products/create"
        } else {
            "products/update"
        };
        let payload = self.product_payload(id);
        self.events.push((topic, payload));
        Ok((id, created))
    }

    fn validate_spec(
        &self,
        existing: Option<u64>,
        spec: &ProductSpec,
    ) -> Result<(), Vec<UserError>> {
        let mut errors = Vec::new();
        if existing.is_none() && spec.title.as_deref().is_none_or(|t| t.trim().is_empty()) {
            errors.push(UserError::new(
                &["input", "title"],
                "BLANK",
                "Title can't be blank",
            ));
        }
        if let Some(h) = &spec.handle {
            if h.is_empty() || h.len() > 255 {
                errors.push(UserError::new(
                    &["input", "handle"],
                    "INVALID",
                    "Handle is invalid",
                ));
            } else if self
                .handles
                .get(h)
                .is_some_and(|owner| Some(*owner) != existing)
            {
                errors.push(UserError::new(
                    &["input", "handle"],
                    "TAKEN",
                    format!("Handle '{h}' already in use. Please provide a new handle."),
                ));
            }
        }
        if let Some(s) = &spec.status
            && !["ACTIVE", "ARCHIVED", "DRAFT"].contains(&s.as_str())
        {
            errors.push(UserError::new(
                &["input", "status"],
                "INVALID",
                "Status is invalid",
            ));
        }
        for (i, c) in spec.collections.iter().flatten().enumerate() {
            if !self.collections.contains_key(c) {
                errors.push(UserError::new(
                    &["input", "collections", &i.to_string()],
                    "COLLECTION_DOES_NOT_EXIST",
                    format!("Collection {} does not exist", gid("Collection", *c)),
                ));
            }
        }
        if let Some(variants) = &spec.variants {
            if variants.is_empty() {
                errors.push(UserError::new(
                    &["input", "variants"],
                    "INVALID_INPUT",
                    "A product needs at least one variant",
                ));
            }
            if variants.len() > MAX_VARIANTS {
                errors.push(UserError::new(
                    &["input", "variants"],
                    "VARIANTS_OVER_LIMIT",
                    format!("A product has at most {MAX_VARIANTS} variants"),
                ));
            }
            let mut combos = BTreeSet::new();
            let mut ids = BTreeSet::new();
            for (i, v) in variants.iter().enumerate() {
                let at = i.to_string();
                if let Some(vid) = v.id {
                    let owned = self.variants.get(&vid).map(|x| x.product_id);
                    if owned.is_none() || owned != existing {
                        errors.push(UserError::new(
                            &["input", "variants", &at, "id"],
                            "PRODUCT_VARIANT_DOES_NOT_EXIST",
                            format!("Variant {} does not exist", gid("ProductVariant", vid)),
                        ));
                    }
                    if !ids.insert(vid) {
                        errors.push(UserError::new(
                            &["input", "variants", &at, "id"],
                            "DUPLICATE_INPUT",
                            "The same variant is listed twice",
                        ));
                    }
                }
                if v.options.is_empty() {
                    errors.push(UserError::new(
                        &["input", "variants", &at, "optionValues"],
                        "INVALID_INPUT",
                        "A variant needs option values",
                    ));
                }
                if !combos.insert(v.options.clone()) {
                    errors.push(UserError::new(
                        &["input", "variants", &at],
                        "DUPLICATED_OPTION_VALUE",
                        format!(
                            "The variant '{}' already exists.",
                            v.options
                                .iter()
                                .map(|o| o.1.as_str())
                                .collect::<Vec<_>>()
                                .join(" / ")
                        ),
                    ));
                }
                if let Some(p) = &v.price
                    && money(p).is_none()
                {
                    errors.push(UserError::new(
                        &["input", "variants", &at, "price"],
                        "INVALID",
                        "Price is not a valid amount",
                    ));
                }
                for (l, q) in &v.quantities {
                    if !self.locations.contains_key(l) {
                        errors.push(UserError::new(
                            &["input", "variants", &at, "inventoryQuantities"],
                            "INVALID_LOCATION",
                            format!("Location {} does not exist", gid("Location", *l)),
                        ));
                    }
                    if q.abs() > QUANTITY_LIMIT {
                        errors.push(UserError::new(
                            &["input", "variants", &at, "inventoryQuantities"],
                            "INVALID_QUANTITY",
                            "Quantity is out of range",
                        ));
                    }
                }
            }
        }
        for (i, f) in spec.files.iter().flatten().enumerate() {
            let at = i.to_string();
            match (f.id, f.source.as_deref()) {
                (Some(fid), _) if !self.files.contains_key(&fid) => errors.push(UserError::new(
                    &["input", "files", &at, "id"],
                    "FILE_DOES_NOT_EXIST",
                    format!("File {} does not exist", gid("MediaImage", fid)),
                )),
                (None, Some(src))
                    if !(src.starts_with("https://") || src.starts_with("http://"))
                        || basename(src).is_none() =>
                {
                    errors.push(UserError::new(
                        &["input", "files", &at, "originalSource"],
                        "INVALID",
                        "Image URL is invalid",
                    ))
                }
                (None, None) => errors.push(UserError::new(
                    &["input", "files", &at],
                    "INVALID",
                    "A file needs an id or an originalSource",
                )),
                _ => {}
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn apply_scalars(&mut self, id: u64, spec: &ProductSpec) {
        let old_handle = self.products.get(&id).map(|p| p.handle.clone());
        if let (Some(h), Some(old)) = (&spec.handle, old_handle)
            && *h != old
        {
            self.handles.remove(&old);
            self.handles.insert(h.clone(), id);
        }
        let Some(p) = self.products.get_mut(&id) else {
            return;
        };
        if let Some(v) = &spec.title {
            p.title = v.clone();
        }
        if let Some(v) = &spec.handle {
            p.handle = v.clone();
        }
        if let Some(v) = &spec.status {
            p.status = v.clone();
        }
        if let Some(v) = &spec.vendor {
            p.vendor = v.clone();
        }
        if let Some(v) = &spec.product_type {
            p.product_type = v.clone();
        }
        if let Some(v) = &spec.tags {
            p.tags = v.clone();
        }
        if let Some(v) = &spec.description_html {
            p.description_html = v.clone();
        }
    }

    /// Adds an image to the library, as an upload named `name` would.
    fn add_file(&mut self, name: &str, alt: &str) -> u64 {
        let id = self.id();
        let mut filename = name.to_owned();
        if self.filenames.contains(&filename) {
            filename = match name.rsplit_once('.') {
                Some((stem, ext)) => format!("{stem}_{id:x}.{ext}"),
                None => format!("{name}_{id:x}"),
            };
        }
        self.filenames.insert(filename.clone());
        let url = format!("https://cdn.mock.shop/s/files/{}/{filename}", self.shop);
        self.files.insert(
            id,
            MediaFile {
                id,
                alt: alt.to_owned(),
                filename,
                url,
            },
        );
        id
    }

    /// Makes `files` a product's image list (validated before).
    fn set_media(&mut self, id: u64, files: &[FileSpec]) {
        let mut list = Vec::with_capacity(files.len());
        for f in files {
            let fid = match (f.id, f.source.as_deref()) {
                (Some(fid), _) => fid,
                (None, Some(src)) => {
                    let name = f
                        .filename
                        .clone()
                        .or_else(|| basename(src).map(str::to_owned))
                        .unwrap_or_else(|| "image".into());
                    self.add_file(&name, f.alt.as_deref().unwrap_or_default())
                }
                (None, None) => continue,
            };
            if let (Some(alt), Some(file)) = (&f.alt, self.files.get_mut(&fid)) {
                file.alt = alt.clone();
            }
            if !list.contains(&fid) {
                list.push(fid);
            }
        }
        if let Some(p) = self.products.get_mut(&id) {
            p.media = list;
        }
    }

    /// Replaces a product's collections with `cols`.
    pub fn set_collections(&mut self, id: u64, cols: &[u64], now: i64) {
        let want: BTreeSet<u64> = cols.iter().copied().collect();
        let had = self
            .products
            .get(&id)
            .map(|p| p.collections.clone())
            .unwrap_or_default();
        for c in had.difference(&want) {
            if let Some(col) = self.collections.get_mut(c) {
                col.products.remove(&id);
                col.updated_at = now;
            }
        }
        for c in want.difference(&had) {
            if let Some(col) = self.collections.get_mut(c) {
                col.products.insert(id);
                col.updated_at = now;
            }
        }
        if let Some(p) = self.products.get_mut(&id) {
            p.collections = want;
        }
    }

    fn replace_variants(
        &mut self,
        id: u64,
        options: Option<Vec<(String, Vec<String>)>>,
        specs: Vec<VariantSpec>,
        now: i64,
    ) {
        let old: Vec<u64> = self
            .products
            .get(&id)
            .map(|p| p.variants.clone())
            .unwrap_or_default();
        let mut kept = BTreeSet::new();
        let mut order = Vec::with_capacity(specs.len());
        for spec in &specs {
            // By id, else the existing variant with the same option values.
            let matched = spec.id.or_else(|| {
                old.iter().copied().find(|v| {
                    !kept.contains(v)
                        && self
                            .variants
                            .get(v)
                            .is_some_and(|x| x.options == spec.options)
                })
            });
            let vid = match matched {
                Some(vid) => {
                    let (old_sku, new_sku) = match self.variants.get_mut(&vid) {
                        Some(v) => {
                            let old_sku = v.sku.clone();
                            v.options = spec.options.clone();
                            if let Some(s) = &spec.sku {
                                v.sku = Some(s.clone());
                            }
                            if let Some(p) = spec.price.as_deref().and_then(money) {
                                v.price = p;
                            }
                            if let Some(c) = &spec.compare_at_price {
                                v.compare_at_price = c.as_deref().and_then(money);
                            }
                            v.updated_at = now;
                            (old_sku, v.sku.clone())
                        }
                        None => (None, None),
                    };
                    if old_sku != new_sku {
                        self.index_sku(&old_sku, vid, false);
                        self.index_sku(&new_sku, vid, true);
                    }
                    vid
                }
                None => self.create_variant(id, spec, now),
            };
            kept.insert(vid);
            order.push(vid);
        }
        for v in old.iter().filter(|v| !kept.contains(v)) {
            self.remove_variant(*v);
        }
        let options = options.unwrap_or_else(|| {
            // Derived from the variants, in order of first appearance.
            let mut opts: Vec<(String, Vec<String>)> = Vec::new();
            for s in &specs {
                for (name, value) in &s.options {
                    match opts.iter_mut().find(|o| &o.0 == name) {
                        Some(o) if !o.1.contains(value) => o.1.push(value.clone()),
                        Some(_) => {}
                        None => opts.push((name.clone(), vec![value.clone()])),
                    }
                }
            }
            opts
        });
        if let Some(p) = self.products.get_mut(&id) {
            p.variants = order;
            p.options = options;
        }
    }

    fn create_variant(&mut self, product: u64, spec: &VariantSpec, now: i64) -> u64 {
        let vid = self.id();
        let iid = self.id();
        self.index_sku(&spec.sku, vid, true);
        self.variants.insert(
            vid,
            Variant {
                id: vid,
                product_id: product,
                sku: spec.sku.clone(),
                price: spec
                    .price
                    .as_deref()
                    .and_then(money)
                    .unwrap_or_else(|| "0.00".into()),
                compare_at_price: spec
                    .compare_at_price
                    .clone()
                    .flatten()
                    .as_deref()
                    .and_then(money),
                options: spec.options.clone(),
                inventory_item_id: iid,
                created_at: now,
                updated_at: now,
            },
        );
        self.items.insert(
            iid,
            InventoryItem {
                id: iid,
                variant_id: vid,
                tracked: true,
                updated_at: now,
            },
        );
        let locations: Vec<u64> = self.locations.keys().copied().collect();
        for l in locations {
            let available = spec
                .quantities
                .iter()
                .find(|(loc, _)| *loc == l)
                .map(|(_, q)| *q)
                .unwrap_or(0);
            self.levels.insert(
                (iid, l),
                Level {
                    available,
                    committed: 0,
                    updated_at: now,
                },
            );
        }
        vid
    }

    fn remove_variant(&mut self, vid: u64) {
        if let Some(v) = self.variants.remove(&vid) {
            self.index_sku(&v.sku, vid, false);
            self.items.remove(&v.inventory_item_id);
            let locations: Vec<u64> = self.locations.keys().copied().collect();
            for l in locations {
                self.levels.remove(&(v.inventory_item_id, l));
            }
        }
    }

    /// Deletes a product with its variants and inventory.
    pub fn delete_product(&mut self, id: u64, now: i64) -> Result<(), UserError> {
        let Some(p) = self.products.remove(&id) else {
            return Err(UserError::new(
                &["input", "id"],
                "PRODUCT_DOES_NOT_EXIST",
                "Product does not exist",
            ));
        };
        self.by_update.remove(&(p.updated_at, id));
        self.handles.remove(&p.handle);
        for v in &p.variants {
            self.remove_variant(*v);
        }
        for c in &p.collections {
            if let Some(col) = self.collections.get_mut(c) {
                col.products.remove(&id);
                col.updated_at = now;
            }
        }
        self.events.push(("products/delete", json!({ "id": id })));
        Ok(())
    }

    pub fn create_collection(
        &mut self,
        title: &str,
        handle: Option<&str>,
        products: &[u64],
        now: i64,
    ) -> Result<u64, UserError> {
        if title.trim().is_empty() {
            return Err(UserError::new(
                &["input", "title"],
                "BLANK",
                "Title can't be blank",
            ));
        }
        if let Some(p) = products.iter().find(|p| !self.products.contains_key(p)) {
            return Err(UserError::new(
                &["input", "products"],
                "PRODUCT_DOES_NOT_EXIST",
                format!("Product {} does not exist", gid("Product", *p)),
            ));
        }
        let handle = handle.map(str::to_owned).unwrap_or_else(|| slug(title));
        if self.collections.values().any(|c| c.handle == handle) {
            return Err(UserError::new(
                &["input", "handle"],
                "TAKEN",
                format!("Handle '{handle}' already in use"),
            ));
        }
        let id = self.id();
        self.collections.insert(
            id,
            Collection {
                id,
                title: title.to_owned(),
                handle,
                products: BTreeSet::new(),
                updated_at: now,
            },
        );
        self.change_membership(id, products, true, now)?;
        Ok(id)
    }

    /// Adds products to a collection, or removes them.
    pub fn change_membership(
        &mut self,
        collection: u64,
        products: &[u64],
        add: bool,
        now: i64,
    ) -> Result<(), UserError> {
        if !self.collections.contains_key(&collection) {
            return Err(UserError::new(
                &["id"],
                "COLLECTION_DOES_NOT_EXIST",
                "Collection does not exist",
            ));
        }
        if let Some(p) = products.iter().find(|p| !self.products.contains_key(p)) {
            return Err(UserError::new(
                &["productIds"],
                "PRODUCT_DOES_NOT_EXIST",
                format!("Product {} does not exist", gid("Product", *p)),
            ));
        }
        for p in products {
            let mut cols = self
                .products
                .get(p)
                .map(|x| x.collections.clone())
                .unwrap_or_default();
            if add {
                cols.insert(collection);
            } else {
                cols.remove(&collection);
            }
            let cols: Vec<u64> = cols.into_iter().collect();
            self.set_collections(*p, &cols, now);
            self.touch(*p, now);
        }
        Ok(())
    }

    fn check_changes(
        &self,
        name: &str,
        changes: &[QuantityChange],
        list: &str,
        absolute: bool,
    ) -> Result<(), Vec<UserError>> {
        let mut errors = Vec::new();
        let names = ["available", "on_hand"];
        if !names.contains(&name) {
            errors.push(UserError::new(
                &["input", "name"],
                "INVALID_QUANTITY_NAME",
                format!("The quantity name must be one of: {}", names.join(", ")),
            ));
        }
        for (i, c) in changes.iter().enumerate() {
            let at = i.to_string();
            let Some(level) = self.levels.get(&(c.item, c.location)) else {
                let (field, code, msg) = if !self.items.contains_key(&c.item) {
                    (
                        "inventoryItemId",
                        "INVALID_INVENTORY_ITEM",
                        "The specified inventory item could not be found.",
                    )
                } else if !self.locations.contains_key(&c.location) {
                    (
                        "locationId",
                        "INVALID_LOCATION",
                        "The specified location could not be found.",
                    )
                } else {
                    (
                        "locationId",
                        "ITEM_NOT_STOCKED_AT_LOCATION",
                        "The item is not stocked at the location.",
                    )
                };
                errors.push(UserError::new(&["input", list, &at, field], code, msg));
                continue;
            };
            let current = level.quantity(name).unwrap_or(0);
            match c.change_from {
                None => errors.push(UserError::new(
                    &["input", list, &at, "changeFromQuantity"],
                    "CHANGE_FROM_QUANTITY_REQUIRED",
                    "changeFromQuantity is required: pass the quantity you expect, or null to skip the check.",
                )),
                Some(Some(expected)) if expected != current => errors.push(UserError::new(
                    &["input", list, &at, "changeFromQuantity"],
                    "CHANGE_FROM_QUANTITY_STALE",
                    format!(
                        "The changeFromQuantity {expected} does not match the persisted quantity {current}."
                    ),
                )),
                _ => {}
            }
            let after = if absolute {
                c.amount
            } else {
                current + c.amount
            };
            if after.abs() > QUANTITY_LIMIT {
                errors.push(UserError::new(
                    &[
                        "input",
                        list,
                        &at,
                        if absolute { "quantity" } else { "delta" },
                    ],
                    "INVALID_QUANTITY_TOO_HIGH",
                    "The quantity can't be more than 1,000,000,000 or less than -1,000,000,000.",
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// `inventoryAdjustQuantities` / `inventorySetQuantities`: all changes apply, or none.
    pub fn change_quantities(
        &mut self,
        name: &str,
        reason: &str,
        reference: Option<String>,
        changes: &[QuantityChange],
        absolute: bool,
        now: i64,
    ) -> Result<AdjustmentGroup, Vec<UserError>> {
        let list = if absolute { "quantities" } else { "changes" };
        self.check_changes(name, changes, list, absolute)?;
        let mut applied = Vec::with_capacity(changes.len());
        for c in changes {
            let Some(level) = self.levels.get_mut(&(c.item, c.location)) else {
                continue;
            };
            let current = level.quantity(name).unwrap_or(0);
            let delta = if absolute {
                c.amount - current
            } else {
                c.amount
            };
            // `on_hand = available + committed`: both names move `available`.
            level.available += delta;
            level.updated_at = now;
            applied.push(Change {
                name: name.to_owned(),
                delta,
                quantity_after: current + delta,
                item: c.item,
                location: c.location,
                ledger_document_uri: c.ledger_document_uri.clone(),
            });
            self.level_event(c.item, c.location);
        }
        Ok(AdjustmentGroup {
            id: self.id(),
            created_at: now,
            reason: reason.to_owned(),
            reference_document_uri: reference,
            changes: applied,
        })
    }

    fn level_event(&mut self, item: u64, location: u64) {
        if let Some(l) = self.levels.get(&(item, location)) {
            let payload = json!({
                "inventory_item_id": item,
                "location_id": location,
                "available": l.available,
                "updated_at": iso(l.updated_at),
                "admin_graphql_api_id": format!("gid://shopify/InventoryLevel/{location}?inventory_item_id={item}"),
            });
            self.events.push(("inventory_levels/update", payload));
        }
    }

    /// A shopper's order: each line takes `quantity` from `available` (into `committed`) at
    /// the first location; refused whole if any line is short or unknown.
    pub fn place_order(&mut self, lines: &[(u64, i64)], now: i64) -> Result<u64, UserError> {
        let location = self.default_location();
        if lines.is_empty() {
            return Err(UserError::new(&["lines"], "BLANK", "An order needs lines"));
        }
        let mut need: BTreeMap<u64, i64> = BTreeMap::new();
        for (i, (vid, qty)) in lines.iter().enumerate() {
            let Some(v) = self.variants.get(vid) else {
                return Err(UserError::new(
                    &["lines", &i.to_string(), "variant_id"],
                    "NOT_FOUND",
                    format!("variant {vid} not found"),
                ));
            };
            if *qty <= 0 {
                return Err(UserError::new(
                    &["lines", &i.to_string(), "quantity"],
                    "INVALID",
                    "quantity must be positive",
                ));
            }
            *need.entry(v.inventory_item_id).or_default() += qty;
        }
        for (item, qty) in &need {
            let available = self
                .levels
                .get(&(*item, location))
                .map(|l| l.available)
                .unwrap_or(0);
            if available < *qty {
                return Err(UserError::new(
                    &["lines"],
                    "NOT_ENOUGH_STOCK",
                    format!("only {available} available of inventory item {item}"),
                ));
            }
        }
        let id = self.id();
        let mut order_lines = Vec::with_capacity(lines.len());
        for (vid, qty) in lines {
            let Some(v) = self.variants.get(vid).cloned() else {
                continue;
            };
            let title = self
                .products
                .get(&v.product_id)
                .map(|p| p.title.clone())
                .unwrap_or_default();
            order_lines.push(LineItem {
                id: self.id(),
                variant_id: v.id,
                product_id: v.product_id,
                sku: v.sku.clone(),
                title,
                quantity: *qty,
                price: v.price.clone(),
            });
        }
        for (item, qty) in &need {
            if let Some(l) = self.levels.get_mut(&(*item, location)) {
                l.available -= qty;
                l.committed += qty;
                l.updated_at = now;
            }
        }
        let name = format!("#{}", 1001 + self.orders.len());
        let order = Order {
            id,
            name,
            created_at: now,
            location_id: location,
            lines: order_lines,
        };
        self.events.push(("orders/create", order_payload(&order)));
        for item in need.keys() {
            self.level_event(*item, location);
        }
        self.orders.insert(id, order);
        Ok(id)
    }

    /// Edits a product as a merchant would in the admin.
    pub fn merchant_edit(
        &mut self,
        id: u64,
        spec: ProductSpec,
        now: i64,
    ) -> Result<(), Vec<UserError>> {
        self.product_set(Some(id), None, spec, now).map(|_| ())
    }

    /// Changes a variant's price or SKU (a merchant in the admin).
    pub fn edit_variant(
        &mut self,
        id: u64,
        price: Option<String>,
        sku: Option<String>,
        now: i64,
    ) -> Result<(), UserError> {
        let Some(v) = self.variants.get(&id) else {
            return Err(UserError::new(
                &["id"],
                "NOT_FOUND",
                format!("variant {id} not found"),
            ));
        };
        let price = match price {
            Some(p) => Some(money(&p).ok_or_else(|| {
                UserError::new(&["price"], "INVALID", "Price is not a valid amount")
            })?),
            None => None,
        };
        let (product, old_sku) = (v.product_id, v.sku.clone());
        if let Some(new) = &sku {
            self.index_sku(&old_sku, id, false);
            self.index_sku(&Some(new.clone()), id, true);
        }
        if let Some(v) = self.variants.get_mut(&id) {
            if let Some(p) = price {
                v.price = p;
            }
            if let Some(s) = sku {
                v.sku = Some(s);
            }
            v.updated_at = now;
        }
        self.touch(product, now);
        let payload = self.product_payload(product);
        self.events.push(("products/update", payload));
        Ok(())
    }

    /// Sets a level's `available` by hand (a stock count), firing `inventory_levels/update`.
    pub fn merchant_set_available(
        &mut self,
        item: u64,
        location: Option<u64>,
        available: i64,
        now: i64,
    ) -> Result<(), Vec<UserError>> {
        let location = location.unwrap_or_else(|| self.default_location());
        self.change_quantities(
            "available",
            "correction",
            None,
            &[QuantityChange {
                item,
                location,
                amount: available,
                change_from: Some(None),
                ledger_document_uri: None,
            }],
            true,
            now,
        )
        .map(|_| ())
    }

    /// The REST-style payload of `products/create` and `products/update`.
    pub fn product_payload(&self, id: u64) -> Value {
        let Some(p) = self.products.get(&id) else {
            return json!({ "id": id });
        };
        let variants: Vec<Value> = p
            .variants
            .iter()
            .filter_map(|v| self.variants.get(v))
            .map(|v| {
                json!({
                    "id": v.id,
                    "product_id": p.id,
                    "title": v.title(),
                    "sku": v.sku,
                    "price": v.price,
                    "inventory_item_id": v.inventory_item_id,
                    "admin_graphql_api_id": gid("ProductVariant", v.id),
                    "updated_at": iso(v.updated_at),
                })
            })
            .collect();
        json!({
            "id": p.id,
            "admin_graphql_api_id": gid("Product", p.id),
            "title": p.title,
            "handle": p.handle,
            "status": p.status.to_lowercase(),
            "vendor": p.vendor,
            "product_type": p.product_type,
            "tags": p.tags.join(", "),
            "body_html": p.description_html,
            "created_at": iso(p.created_at),
            "updated_at": iso(p.updated_at),
            "variants": variants,
            "images": p
                .media
                .iter()
                .filter_map(|f| self.files.get(f))
                .enumerate()
                .map(|(i, f)| json!({
                    "id": f.id,
                    "product_id": p.id,
                    "position": i + 1,
                    "alt": f.alt,
                    "src": f.url,
                    "admin_graphql_api_id": gid("MediaImage", f.id),
                }))
                .collect::<Vec<_>>(),
        })
    }

    /// Everything in the catalog, for assertions (products in id order, with variants,
    /// inventory per location, collections, orders).
    pub fn snapshot(&self) -> Value {
        let products: Vec<Value> = self
            .products
            .values()
            .map(|p| {
                let variants: Vec<Value> = p
                    .variants
                    .iter()
                    .filter_map(|v| self.variants.get(v))
                    .map(|v| {
                        let levels: Vec<Value> = self
                            .locations
                            .keys()
                            .filter_map(|l| {
                                self.levels.get(&(v.inventory_item_id, *l)).map(|q| {
                                    json!({
                                        "location_id": l,
                                        "available": q.available,
                                        "committed": q.committed,
                                        "on_hand": q.on_hand(),
                                    })
                                })
                            })
                            .collect();
                        json!({
                            "id": v.id,
                            "sku": v.sku,
                            "price": v.price,
                            "compare_at_price": v.compare_at_price,
                            "options": v.options.iter().map(|(n, x)| json!([n, x])).collect::<Vec<_>>(),
                            "inventory_item_id": v.inventory_item_id,
                            "inventory": levels,
                        })
                    })
                    .collect();
                json!({
                    "id": p.id,
                    "title": p.title,
                    "handle": p.handle,
                    "status": p.status,
                    "vendor": p.vendor,
                    "product_type": p.product_type,
                    "tags": p.tags,
                    "updated_at": p.updated_at,
                    "collections": p.collections,
                    "variants": variants,
                    "images": p
                        .media
                        .iter()
                        .filter_map(|f| self.files.get(f))
                        .map(|f| json!({"id": f.id, "alt": f.alt, "filename": f.filename, "url": f.url}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        let collections: Vec<Value> = self
            .collections
            .values()
            .map(|c| json!({ "id": c.id, "title": c.title, "handle": c.handle, "products": c.products }))
            .collect();
        let orders: Vec<Value> = self.orders.values().map(order_payload).collect();
        let locations: Vec<Value> = self
            .locations
            .values()
            .map(|l| json!({ "id": l.id, "name": l.name }))
            .collect();
        json!({
            "locations": locations,
            "products": products,
            "collections": collections,
            "orders": orders,
        })
    }
}

pub(crate) fn order_payload(o: &Order) -> Value {
    let lines: Vec<Value> = o
        .lines
        .iter()
        .map(|l| {
            json!({
                "id": l.id,
                "variant_id": l.variant_id,
                "product_id": l.product_id,
                "sku": l.sku,
                "title": l.title,
                "quantity": l.quantity,
                "price": l.price,
            })
        })
        .collect();
    json!({
        "id": o.id,
        "admin_graphql_api_id": gid("Order", o.id),
        "name": o.name,
        "created_at": iso(o.created_at),
        "location_id": o.location_id,
        "line_items": lines,
    })
}
