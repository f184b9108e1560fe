//! Field resolvers: one `Obj` per GraphQL object, read from (and for mutations written to) the
//! store that the request runs against. apollo-compiler's executor walks the query and calls
//! `resolve_field` for what was selected, so only selected data is built.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Bound;
use std::rc::Rc;

use apollo_compiler::resolvers::{FieldError, ObjectValue, ResolveInfo, ResolvedValue};
use base64::Engine;
use serde_json::{Map, Value, json};

use super::search::{Field, Search};
use crate::catalog::{
    AdjustmentGroup, Catalog, FileSpec, MediaFile, ProductSpec, QuantityChange, UserError,
    VariantSpec, gid, iso,
};
use crate::platform::Store;
use crate::webhooks::Subscription;

/// Page sizes Shopify allows.
const MAX_PAGE: i64 = 250;

/// An idempotency key's state in a store.
#[derive(Debug, Clone)]
pub(crate) enum IdemEntry {
    /// A request is applying it now.
    InFlight { request: u64 },
    /// Applied: the arguments it was applied with, and the result to give back on a replay.
    Done {
        args: String,
        group: AdjustmentGroup,
        at_ms: i64,
    },
}

/// One request's view of its store. The store is moved in for the request (the platform's lock
/// is held meanwhile), so resolvers read and write it without lifetimes to the lock.
pub(crate) struct Ctx {
    pub store: RefCell<Store>,
    pub now: i64,
    pub request: u64,
    /// Idempotency keys by the response key of the root field they were given on.
    pub idem_keys: HashMap<String, String>,
    /// Keys another request was applying when this one arrived.
    pub concurrent_keys: std::collections::HashSet<String>,
    pub subscriptions: Vec<Subscription>,
    pub new_subscriptions: RefCell<Vec<Subscription>>,
    pub warnings: RefCell<Vec<String>>,
}

#[derive(Clone)]
pub(crate) enum Val<'c> {
    Leaf(Value),
    Obj(Obj<'c>),
    List(Vec<Val<'c>>),
}

impl<'c> Val<'c> {
    fn null() -> Val<'c> {
        Val::Leaf(Value::Null)
    }

    fn into_resolved<'a>(self) -> ResolvedValue<'a>
    where
        'c: 'a,
    {
        match self {
            // GraphQL lists are resolved item by item, also lists of scalars.
            Val::Leaf(Value::Array(items)) => {
                ResolvedValue::list(items.into_iter().map(|v| Val::Leaf(v).into_resolved()))
            }
            Val::Leaf(v) => ResolvedValue::leaf(v),
            Val::Obj(o) => ResolvedValue::object(o),
            Val::List(items) => ResolvedValue::list(items.into_iter().map(Val::into_resolved)),
        }
    }
}

fn leaf(v: impl Into<Value>) -> Val<'static> {
    Val::Leaf(v.into())
}

#[derive(Clone)]
enum Kind<'c> {
    Query,
    Mutation,
    Shop,
    Product(u64),
    Variant(u64),
    Item(u64),
    Level(u64, u64),
    Location(u64),
    Collection(u64),
    Order(u64),
    Subscription(Subscription),
    Group(Rc<AdjustmentGroup>),
    /// Any other object: connections, edges, payloads, user errors.
    Record(String, Rc<Vec<(&'static str, Val<'c>)>>),
}

#[derive(Clone)]
pub(crate) struct Obj<'c> {
    ctx: &'c Ctx,
    kind: Kind<'c>,
}

fn err(message: impl Into<String>) -> FieldError {
    FieldError {
        message: message.into(),
    }
}

/// The number in `gid://shopify/{kind}/{n}` (a query string after it is ignored).
pub(crate) fn parse_gid(s: &str, kind: &str) -> Result<u64, FieldError> {
    s.strip_prefix("gid://shopify/")
        .and_then(|r| r.strip_prefix(kind))
        .and_then(|r| r.strip_prefix('/'))
        .and_then(|r| r.split('?').next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| err(format!("Invalid global id '{s}'")))
}

fn encode_cursor(raw: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn decode_cursor(c: &str) -> Result<String, FieldError> {
    base64::engine::general_purpose::STANDARD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| err(format!("Invalid cursor '{c}'")))
}

/// `first`, required and at most 250, as Shopify wants it.
fn first(args: &Map<String, Value>) -> Result<usize, FieldError> {
    match args.get("first").and_then(Value::as_i64) {
        None => Err(err("you must provide one of first or last")),
        Some(n) if !(0..=MAX_PAGE).contains(&n) => Err(err(format!(
            "The value of first must be between 0 and {MAX_PAGE}, inclusive"
        ))),
        Some(n) => Ok(n as usize),
    }
}

fn str_arg<'a>(args: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

/// The cursor of an id-ordered page: `id:{n}`.
fn after_id(args: &Map<String, Value>) -> Result<Option<u64>, FieldError> {
    match str_arg(args, "after") {
        None => Ok(None),
        Some(c) => decode_cursor(c)?
            .strip_prefix("id:")
            .and_then(|n| n.parse().ok())
            .map(Some)
            .ok_or_else(|| err(format!("Invalid cursor '{c}'"))),
    }
}

fn id_range<T>(
    map: &std::collections::BTreeMap<u64, T>,
    after: Option<u64>,
) -> std::collections::btree_map::Range<'_, u64, T> {
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    map.range((start, Bound::Unbounded))
}

/// The ids after the page cursor that `keep` accepts: one page and one more (which says
/// whether there is a next page).
fn page_ids<T>(
    map: &std::collections::BTreeMap<u64, T>,
    args: &Map<String, Value>,
    keep: impl Fn(&T) -> bool,
) -> Result<Vec<u64>, FieldError> {
    let n = first(args)?;
    Ok(id_range(map, after_id(args)?)
        .filter(|(_, v)| keep(v))
        .map(|(id, _)| *id)
        .take(n + 1)
        .collect())
}

/// The ids of a set after a cursor's id.
fn set_after(set: &std::collections::BTreeSet<u64>, after: Option<u64>) -> Vec<u64> {
    set.range((
        after.map_or(Bound::Unbounded, Bound::Excluded),
        Bound::Unbounded,
    ))
    .copied()
    .collect()
}

fn record<'c>(ctx: &'c Ctx, ty: &str, fields: Vec<(&'static str, Val<'c>)>) -> Val<'c> {
    Val::Obj(Obj {
        ctx,
        kind: Kind::Record(ty.to_owned(), Rc::new(fields)),
    })
}

/// A `MediaImage`: an image attached to a product (always `READY`: uploads are not processed).
fn media_image<'c>(ctx: &'c Ctx, f: &MediaFile) -> Val<'c> {
    let image = record(
        ctx,
        "Image",
        vec![
            ("id", leaf(gid("ImageSource", f.id))),
            ("url", leaf(f.url.clone())),
            ("altText", leaf(f.alt.clone())),
        ],
    );
    record(
        ctx,
        "MediaImage",
        vec![
            ("id", leaf(gid("MediaImage", f.id))),
            ("alt", leaf(f.alt.clone())),
            ("mediaContentType", leaf("IMAGE")),
            ("status", leaf("READY")),
            (
                "preview",
                record(ctx, "MediaPreviewImage", vec![("image", image.clone())]),
            ),
            ("image", image),
        ],
    )
}

fn user_errors<'c>(ctx: &'c Ctx, ty: &str, errors: &[UserError], with_code: bool) -> Val<'c> {
    Val::List(
        errors
            .iter()
            .map(|e| {
                let mut f = vec![
                    ("field", leaf(json!(e.field))),
                    ("message", leaf(e.message.clone())),
                ];
                if with_code {
                    f.push(("code", leaf(e.code)));
                }
                record(ctx, ty, f)
            })
            .collect(),
    )
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v.and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    })
}

fn money_arg(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl<'c> Obj<'c> {
    pub fn query(ctx: &'c Ctx) -> Obj<'c> {
        Obj {
            ctx,
            kind: Kind::Query,
        }
    }

    pub fn mutation(ctx: &'c Ctx) -> Obj<'c> {
        Obj {
            ctx,
            kind: Kind::Mutation,
        }
    }

    fn obj(&self, kind: Kind<'c>) -> Val<'c> {
        Val::Obj(Obj {
            ctx: self.ctx,
            kind,
        })
    }

    /// A node that may have gone (deleted meanwhile): null instead of an object.
    fn maybe(&self, exists: bool, kind: Kind<'c>) -> Val<'c> {
        if exists { self.obj(kind) } else { Val::null() }
    }

    fn connection(
        &self,
        info: &ResolveInfo<'_>,
        nodes: Vec<(String, Val<'c>)>,
        has_next: bool,
        has_prev: bool,
    ) -> Val<'c> {
        let ty = info.field_definition().ty.inner_named_type().as_str();
        let edge_ty = ty.replace("Connection", "Edge");
        let page_info = record(
            self.ctx,
            "PageInfo",
            vec![
                ("hasNextPage", leaf(has_next)),
                ("hasPreviousPage", leaf(has_prev)),
                (
                    "startCursor",
                    leaf(
                        nodes
                            .first()
                            .map(|n| Value::from(n.0.clone()))
                            .unwrap_or(Value::Null),
                    ),
                ),
                (
                    "endCursor",
                    leaf(
                        nodes
                            .last()
                            .map(|n| Value::from(n.0.clone()))
                            .unwrap_or(Value::Null),
                    ),
                ),
            ],
        );
        let edges = nodes
            .iter()
            .map(|(c, n)| {
                record(
                    self.ctx,
                    &edge_ty,
                    vec![("cursor", leaf(c.clone())), ("node", n.clone())],
                )
            })
            .collect();
        let nodes = nodes.into_iter().map(|(_, n)| n).collect();
        record(
            self.ctx,
            ty,
            vec![
                ("edges", Val::List(edges)),
                ("nodes", Val::List(nodes)),
                ("pageInfo", page_info),
            ],
        )
    }

    /// A page of an id-ordered list: `ids` already start after the cursor.
    fn id_connection(
        &self,
        info: &ResolveInfo<'_>,
        args: &Map<String, Value>,
        ids: impl Iterator<Item = u64>,
        make: impl Fn(u64) -> Kind<'c>,
    ) -> Result<Val<'c>, FieldError> {
        let n = first(args)?;
        let mut page: Vec<u64> = ids.take(n + 1).collect();
        let has_next = page.len() > n;
        page.truncate(n);
        let nodes = page
            .into_iter()
            .map(|id| (encode_cursor(&format!("id:{id}")), self.obj(make(id))))
            .collect();
        Ok(self.connection(info, nodes, has_next, args.contains_key("after")))
    }

    /// A page of a short ordered list (a product's variants, an order's lines).
    fn position_connection(
        &self,
        info: &ResolveInfo<'_>,
        args: &Map<String, Value>,
        all: Vec<Val<'c>>,
    ) -> Result<Val<'c>, FieldError> {
        let n = first(args)?;
        let start = match str_arg(args, "after") {
            None => 0,
            Some(c) => decode_cursor(c)?
                .strip_prefix("pos:")
                .and_then(|p| p.parse::<usize>().ok())
                .map(|p| p + 1)
                .ok_or_else(|| err(format!("Invalid cursor '{c}'")))?,
        };
        let has_next = all.len() > start + n;
        let nodes = all
            .into_iter()
            .enumerate()
            .skip(start)
            .take(n)
            .map(|(i, v)| (encode_cursor(&format!("pos:{i}")), v))
            .collect();
        Ok(self.connection(info, nodes, has_next, start > 0))
    }

    fn search(&self, args: &Map<String, Value>, known: &[&str]) -> Search {
        let mut s = Search::parse(str_arg(args, "query"));
        s.check_fields(known);
        self.ctx
            .warnings
            .borrow_mut()
            .extend(s.warnings.iter().cloned());
        s
    }

    fn field(&self, info: &ResolveInfo<'_>) -> Result<Val<'c>, FieldError> {
        let name = info.field_name();
        let args = match serde_json::to_value(info.arguments()) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let store = self.ctx.store.borrow();
        let cat = &store.catalog;
        let missing = || err(format!("{name}: the object was deleted"));
        match &self.kind {
            Kind::Query => {
                drop(store);
                self.query_field(info, name, &args)
            }
            Kind::Mutation => {
                drop(store);
                self.mutation_field(info, name, &args)
            }
            Kind::Shop => Ok(match name {
                "id" => leaf(gid("Shop", 1)),
                "name" => leaf(cat.shop.clone()),
                "myshopifyDomain" => leaf(format!("{}.myshopify.com", cat.shop)),
                _ => return Err(err(format!("unknown field {name}"))),
            }),
            Kind::Product(id) => {
                let p = cat.products.get(id).ok_or_else(missing)?;
                Ok(match name {
                    "id" => leaf(gid("Product", p.id)),
                    "legacyResourceId" => leaf(p.id.to_string()),
                    "title" => leaf(p.title.clone()),
                    "handle" => leaf(p.handle.clone()),
                    "status" => leaf(p.status.clone()),
                    "vendor" => leaf(p.vendor.clone()),
                    "productType" => leaf(p.product_type.clone()),
                    "tags" => leaf(json!(p.tags)),
                    "descriptionHtml" => leaf(p.description_html.clone()),
                    "createdAt" => leaf(iso(p.created_at)),
                    "updatedAt" => leaf(iso(p.updated_at)),
                    "options" => Val::List(
                        p.options
                            .iter()
                            .enumerate()
                            .map(|(i, (n, values))| {
                                record(
                                    self.ctx,
                                    "ProductOption",
                                    vec![
                                        ("id", leaf(gid("ProductOption", p.id * 10 + i as u64))),
                                        ("name", leaf(n.clone())),
                                        ("position", leaf(i + 1)),
                                        ("values", leaf(json!(values))),
                                    ],
                                )
                            })
                            .collect(),
                    ),
                    "variants" => {
                        let all = p
                            .variants
                            .iter()
                            .map(|v| self.obj(Kind::Variant(*v)))
                            .collect();
                        drop(store);
                        return self.position_connection(info, &args, all);
                    }
                    "variantsCount" => {
                        record(self.ctx, "Count", vec![("count", leaf(p.variants.len()))])
                    }
                    "collections" => {
                        let ids = set_after(&p.collections, after_id(&args)?);
                        drop(store);
                        return self.id_connection(info, &args, ids.into_iter(), Kind::Collection);
                    }
                    "media" => {
                        let all = p
                            .media
                            .iter()
                            .filter_map(|f| cat.files.get(f))
                            .map(|f| media_image(self.ctx, f))
                            .collect();
                        drop(store);
                        return self.position_connection(info, &args, all);
                    }
                    "totalInventory" => leaf(
                        p.variants
                            .iter()
                            .filter_map(|v| cat.variants.get(v))
                            .map(|v| item_available(cat, v.inventory_item_id))
                            .sum::<i64>(),
                    ),
                    _ => return Err(err(format!("unknown field {name}"))),
                })
            }
            Kind::Variant(id) => {
                let v = cat.variants.get(id).ok_or_else(missing)?;
                Ok(match name {
                    "id" => leaf(gid("ProductVariant", v.id)),
                    "legacyResourceId" => leaf(v.id.to_string()),
                    "title" => leaf(v.title()),
                    "sku" => leaf(json!(v.sku)),
                    "price" => leaf(v.price.clone()),
                    "compareAtPrice" => leaf(json!(v.compare_at_price)),
                    "position" => leaf(
                        cat.products
                            .get(&v.product_id)
                            .and_then(|p| p.variants.iter().position(|x| x == id))
                            .map_or(0, |i| i + 1),
                    ),
                    "selectedOptions" => Val::List(
                        v.options
                            .iter()
                            .map(|(n, x)| {
                                record(
                                    self.ctx,
                                    "SelectedOption",
                                    vec![("name", leaf(n.clone())), ("value", leaf(x.clone()))],
                                )
                            })
                            .collect(),
                    ),
                    "product" => self.obj(Kind::Product(v.product_id)),
                    "inventoryItem" => self.obj(Kind::Item(v.inventory_item_id)),
                    "inventoryQuantity" => leaf(item_available(cat, v.inventory_item_id)),
                    "createdAt" => leaf(iso(v.created_at)),
                    "updatedAt" => leaf(iso(v.updated_at)),
                    _ => return Err(err(format!("unknown field {name}"))),
                })
            }
            Kind::Item(id) => {
                let it = cat.items.get(id).ok_or_else(missing)?;
                Ok(match name {
                    "id" => leaf(gid("InventoryItem", it.id)),
                    "legacyResourceId" => leaf(it.id.to_string()),
                    "sku" => leaf(json!(
                        cat.variants.get(&it.variant_id).and_then(|v| v.sku.clone())
                    )),
                    "tracked" => leaf(it.tracked),
                    "variant" => self.obj(Kind::Variant(it.variant_id)),
                    "updatedAt" => leaf(iso(it.updated_at)),
                    "inventoryLevel" => {
                        let loc = parse_gid(
                            str_arg(&args, "locationId").unwrap_or_default(),
                            "Location",
                        )?;
                        self.maybe(
                            cat.levels.contains_key(&(it.id, loc)),
                            Kind::Level(it.id, loc),
                        )
                    }
                    "inventoryLevels" => {
                        let item = it.id;
                        let after = after_id(&args)?;
                        let locs: Vec<u64> = id_range(&cat.locations, after)
                            .map(|(l, _)| *l)
                            .filter(|l| cat.levels.contains_key(&(item, *l)))
                            .collect();
                        drop(store);
                        return self.id_connection(info, &args, locs.into_iter(), |l| {
                            Kind::Level(item, l)
                        });
                    }
                    _ => return Err(err(format!("unknown field {name}"))),
                })
            }
            Kind::Level(item, loc) => {
                let l = cat.levels.get(&(*item, *loc)).ok_or_else(missing)?;
                Ok(match name {
                    "id" => leaf(format!(
                        "gid://shopify/InventoryLevel/{loc}?inventory_item_id={item}"
                    )),
                    "item" => self.obj(Kind::Item(*item)),
                    "location" => self.obj(Kind::Location(*loc)),
                    "updatedAt" => leaf(iso(l.updated_at)),
                    "quantities" => {
                        let names = strings(args.get("names")).unwrap_or_default();
                        let mut out = Vec::with_capacity(names.len());
                        for n in names {
                            let q = l
                                .quantity(&n)
                                .ok_or_else(|| err(format!("Invalid quantity name '{n}'")))?;
                            out.push(record(
                                self.ctx,
                                "InventoryQuantity",
                                vec![
                                    ("name", leaf(n)),
                                    ("quantity", leaf(q)),
                                    ("updatedAt", leaf(iso(l.updated_at))),
                                ],
                            ));
                        }
                        Val::List(out)
                    }
                    _ => return Err(err(format!("unknown field {name}"))),
                })
            }
            Kind::Location(id) => {
                let l = cat.locations.get(id).ok_or_else(missing)?;
                Ok(match name {
                    "id" => leaf(gid("Location", l.id)),
                    "legacyResourceId" => leaf(l.id.to_string()),
                    "name" => leaf(l.name.clone()),
                    "isActive" => leaf(true),
                    _ => return Err(err(format!("unknown field {name}"))),
                })
            }
            Kind::Collection(id) => {
                let c = cat.collections.get(id).ok_or_else(missing)?;
                Ok(match name {
                    "id" => leaf(gid("Collection", c.id)),
                    "legacyResourceId" => leaf(c.id.to_string()),
                    "title" => leaf(c.title.clone()),
                    "handle" => leaf(c.handle.clone()),
                    "updatedAt" => leaf(iso(c.updated_at)),
                    "productsCount" => {
                        record(self.ctx, "Count", vec![("count", leaf(c.products.len()))])
                    }
                    "products" => {
                        let ids = set_after(&c.products, after_id(&args)?);
                        drop(store);
                        return self.id_connection(info, &args, ids.into_iter(), Kind::Product);
                    }
                    _ => return Err(err(format!("unknown field {name}"))),
                })
            }
            Kind::Order(id) => {
                let o = cat.orders.get(id).ok_or_else(missing)?;
                Ok(match name {
                    "id" => leaf(gid("Order", o.id)),
                    "legacyResourceId" => leaf(o.id.to_string()),
                    "name" => leaf(o.name.clone()),
                    "createdAt" => leaf(iso(o.created_at)),
                    "lineItems" => {
                        let all = o
                            .lines
                            .iter()
                            .map(|l| {
                                let variant = self.maybe(
                                    cat.variants.contains_key(&l.variant_id),
                                    Kind::Variant(l.variant_id),
                                );
                                record(
                                    self.ctx,
                                    "LineItem",
                                    vec![
                                        ("id", leaf(gid("LineItem", l.id))),
                                        ("title", leaf(l.title.clone())),
                                        ("sku", leaf(json!(l.sku))),
                                        ("quantity", leaf(l.quantity)),
                                        ("variant", variant),
                                    ],
                                )
                            })
                            .collect();
                        drop(store);
                        return self.position_connection(info, &args, all);
                    }
                    _ => return Err(err(format!("unknown field {name}"))),
                })
            }
            Kind::Subscription(s) => Ok(match name {
                "id" => leaf(s.id.clone()),
                "topic" => leaf(s.topic.to_uppercase().replace('/', "_")),
                "uri" => leaf(s.url.clone()),
                _ => return Err(err(format!("unknown field {name}"))),
            }),
            Kind::Group(g) => Ok(match name {
                "id" => leaf(gid("InventoryAdjustmentGroup", g.id)),
                "createdAt" => leaf(iso(g.created_at)),
                "reason" => leaf(g.reason.clone()),
                "referenceDocumentUri" => leaf(json!(g.reference_document_uri)),
                "changes" => Val::List(
                    g.changes
                        .iter()
                        .map(|c| {
                            record(
                                self.ctx,
                                "InventoryChange",
                                vec![
                                    ("name", leaf(c.name.clone())),
                                    ("delta", leaf(c.delta)),
                                    ("quantityAfterChange", leaf(c.quantity_after)),
                                    (
                                        "item",
                                        self.maybe(
                                            cat.items.contains_key(&c.item),
                                            Kind::Item(c.item),
                                        ),
                                    ),
                                    (
                                        "location",
                                        self.maybe(
                                            cat.locations.contains_key(&c.location),
                                            Kind::Location(c.location),
                                        ),
                                    ),
                                    ("ledgerDocumentUri", leaf(json!(c.ledger_document_uri))),
                                ],
                            )
                        })
                        .collect(),
                ),
                _ => return Err(err(format!("unknown field {name}"))),
            }),
            Kind::Record(_, fields) => fields
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| err(format!("unknown field {name}"))),
        }
    }

    fn query_field(
        &self,
        info: &ResolveInfo<'_>,
        name: &str,
        args: &Map<String, Value>,
    ) -> Result<Val<'c>, FieldError> {
        let store = self.ctx.store.borrow();
        let cat = &store.catalog;
        let id_of = |kind: &str| parse_gid(str_arg(args, "id").unwrap_or_default(), kind);
        match name {
            "shop" => Ok(self.obj(Kind::Shop)),
            "node" => {
                let raw = str_arg(args, "id").unwrap_or_default();
                let kind = raw
                    .strip_prefix("gid://shopify/")
                    .and_then(|r| r.split('/').next())
                    .unwrap_or_default();
                let id = parse_gid(raw, kind)?;
                Ok(match kind {
                    "Product" => self.maybe(cat.products.contains_key(&id), Kind::Product(id)),
                    "ProductVariant" => {
                        self.maybe(cat.variants.contains_key(&id), Kind::Variant(id))
                    }
                    "InventoryItem" => self.maybe(cat.items.contains_key(&id), Kind::Item(id)),
                    "Location" => self.maybe(cat.locations.contains_key(&id), Kind::Location(id)),
                    "Collection" => {
                        self.maybe(cat.collections.contains_key(&id), Kind::Collection(id))
                    }
                    "Order" => self.maybe(cat.orders.contains_key(&id), Kind::Order(id)),
                    _ => Val::null(),
                })
            }
            "product" => {
                let id = id_of("Product")?;
                Ok(self.maybe(cat.products.contains_key(&id), Kind::Product(id)))
            }
            "productByIdentifier" => {
                let ident = args.get("identifier");
                let id = match (
                    ident.and_then(|i| i.get("id")).and_then(Value::as_str),
                    ident.and_then(|i| i.get("handle")).and_then(Value::as_str),
                ) {
                    (Some(g), _) => Some(parse_gid(g, "Product")?),
                    (None, Some(h)) => cat.handles.get(h).copied(),
                    (None, None) => return Err(err("identifier needs an id or a handle")),
                };
                Ok(match id {
                    Some(id) => self.maybe(cat.products.contains_key(&id), Kind::Product(id)),
                    None => Val::null(),
                })
            }
            "productVariant" => {
                let id = id_of("ProductVariant")?;
                Ok(self.maybe(cat.variants.contains_key(&id), Kind::Variant(id)))
            }
            "inventoryItem" => {
                let id = id_of("InventoryItem")?;
                Ok(self.maybe(cat.items.contains_key(&id), Kind::Item(id)))
            }
            "inventoryLevel" => {
                let raw = str_arg(args, "id").unwrap_or_default();
                let loc = parse_gid(raw, "InventoryLevel")?;
                let item = raw
                    .split_once("?inventory_item_id=")
                    .and_then(|(_, i)| i.parse().ok())
                    .ok_or_else(|| err(format!("Invalid global id '{raw}'")))?;
                Ok(self.maybe(
                    cat.levels.contains_key(&(item, loc)),
                    Kind::Level(item, loc),
                ))
            }
            "location" => {
                let id = match str_arg(args, "id") {
                    Some(g) => parse_gid(g, "Location")?,
                    None => cat.default_location(),
                };
                Ok(self.maybe(cat.locations.contains_key(&id), Kind::Location(id)))
            }
            "collection" => {
                let id = id_of("Collection")?;
                Ok(self.maybe(cat.collections.contains_key(&id), Kind::Collection(id)))
            }
            "order" => {
                let id = id_of("Order")?;
                Ok(self.maybe(cat.orders.contains_key(&id), Kind::Order(id)))
            }
            "products" => {
                let page = products_page(cat, args, &self.search(args, PRODUCT_FIELDS))?;
                drop(store);
                let nodes = page
                    .ids
                    .into_iter()
                    .map(|(c, id)| (c, self.obj(Kind::Product(id))))
                    .collect();
                Ok(self.connection(info, nodes, page.has_next, args.contains_key("after")))
            }
            "productVariants" => {
                let search = self.search(args, &["sku", "product_id", "id", "title", "updated_at"]);
                let after = after_id(args)?;
                // An exact SKU goes through the SKU index instead of every variant.
                let by_sku: Option<Vec<u64>> = search.exact("sku").map(|sku| {
                    cat.skus
                        .get(&sku)
                        .map(|set| {
                            set.range((
                                after.map_or(Bound::Unbounded, Bound::Excluded),
                                Bound::Unbounded,
                            ))
                            .copied()
                            .collect()
                        })
                        .unwrap_or_default()
                });
                let matches = |id: &u64| {
                    cat.variants.get(id).is_some_and(|v| {
                        search.matches(|f| match f {
                            "sku" => v.sku.as_deref().map(Field::Str).into_iter().collect(),
                            "product_id" => vec![Field::Num(v.product_id)],
                            "id" => vec![Field::Num(v.id)],
                            "title" => {
                                vec![Field::Str(v.options.first().map_or("", |o| o.1.as_str()))]
                            }
                            "updated_at" => vec![Field::Time(v.updated_at)],
                            _ => vec![],
                        })
                    })
                };
                let n = first(args)?;
                let ids: Vec<u64> = match by_sku {
                    Some(ids) => ids
                        .into_iter()
                        .filter(|id| matches(id))
                        .take(n + 1)
                        .collect(),
                    None => id_range(&cat.variants, after)
                        .map(|(id, _)| *id)
                        .filter(|id| matches(id))
                        .take(n + 1)
                        .collect(),
                };
                drop(store);
                self.id_connection(info, args, ids.into_iter(), Kind::Variant)
            }
            "collections" => {
                let search = self.search(args, &["title", "handle", "id", "updated_at"]);
                let ids = page_ids(&cat.collections, args, |c| {
                    search.matches(|f| match f {
                        "title" => vec![Field::Str(&c.title)],
                        "handle" => vec![Field::Str(&c.handle)],
                        "id" => vec![Field::Num(c.id)],
                        "updated_at" => vec![Field::Time(c.updated_at)],
                        _ => vec![],
                    })
                })?;
                drop(store);
                self.id_connection(info, args, ids.into_iter(), Kind::Collection)
            }
            "inventoryItems" => {
                let search = self.search(args, &["sku", "id", "updated_at"]);
                let ids = page_ids(&cat.items, args, |it| {
                    let sku = cat
                        .variants
                        .get(&it.variant_id)
                        .and_then(|v| v.sku.as_deref());
                    search.matches(|f| match f {
                        "sku" => sku.map(Field::Str).into_iter().collect(),
                        "id" => vec![Field::Num(it.id)],
                        "updated_at" => vec![Field::Time(it.updated_at)],
                        _ => vec![],
                    })
                })?;
                drop(store);
                self.id_connection(info, args, ids.into_iter(), Kind::Item)
            }
            "locations" => {
                let ids = page_ids(&cat.locations, args, |_| true)?;
                drop(store);
                self.id_connection(info, args, ids.into_iter(), Kind::Location)
            }
            "orders" => {
                let search = self.search(args, &["name", "created_at", "id"]);
                let ids = page_ids(&cat.orders, args, |o| {
                    search.matches(|f| match f {
                        "name" | "title" => vec![Field::Str(&o.name)],
                        "created_at" => vec![Field::Time(o.created_at)],
                        "id" => vec![Field::Num(o.id)],
                        _ => vec![],
                    })
                })?;
                drop(store);
                self.id_connection(info, args, ids.into_iter(), Kind::Order)
            }
            "webhookSubscriptions" => {
                drop(store);
                let all = self
                    .ctx
                    .subscriptions
                    .iter()
                    .map(|s| self.obj(Kind::Subscription(s.clone())))
                    .collect();
                self.position_connection(info, args, all)
            }
            _ => Err(err(format!("unknown field {name}"))),
        }
    }

    fn mutation_field(
        &self,
        info: &ResolveInfo<'_>,
        name: &str,
        args: &Map<String, Value>,
    ) -> Result<Val<'c>, FieldError> {
        let ctx = self.ctx;
        let now = ctx.now;
        match name {
            "productSet" => {
                let input = args.get("input").cloned().unwrap_or_default();
                let ident = args.get("identifier");
                let target = match ident
                    .and_then(|i| i.get("id"))
                    .or_else(|| input.get("id"))
                    .and_then(Value::as_str)
                {
                    Some(g) => Some(parse_gid(g, "Product")?),
                    None => None,
                };
                let handle = ident.and_then(|i| i.get("handle")).and_then(Value::as_str);
                let spec = product_spec(&input)?;
                let result = ctx
                    .store
                    .borrow_mut()
                    .catalog
                    .product_set(target, handle, spec, now);
                Ok(match result {
                    Ok((id, _)) => record(
                        ctx,
                        "ProductSetPayload",
                        vec![
                            ("product", self.obj(Kind::Product(id))),
                            ("userErrors", Val::List(vec![])),
                        ],
                    ),
                    Err(e) => record(
                        ctx,
                        "ProductSetPayload",
                        vec![
                            ("product", Val::null()),
                            (
                                "userErrors",
                                user_errors(ctx, "ProductSetUserError", &e, true),
                            ),
                        ],
                    ),
                })
            }
            "productUpdate" => {
                let input = args.get("product").cloned().unwrap_or_default();
                let id = parse_gid(
                    input.get("id").and_then(Value::as_str).unwrap_or_default(),
                    "Product",
                )?;
                let spec = product_spec(&input)?;
                let result = ctx
                    .store
                    .borrow_mut()
                    .catalog
                    .product_set(Some(id), None, spec, now);
                let (product, errors) = match result {
                    Ok((id, _)) => (self.obj(Kind::Product(id)), vec![]),
                    Err(e) => (Val::null(), e),
                };
                Ok(record(
                    ctx,
                    "ProductUpdatePayload",
                    vec![
                        ("product", product),
                        ("userErrors", user_errors(ctx, "UserError", &errors, false)),
                    ],
                ))
            }
            "productDelete" => {
                let raw = args
                    .get("input")
                    .and_then(|i| i.get("id"))
                    .and_then(Value::as_str);
                let id = parse_gid(raw.unwrap_or_default(), "Product")?;
                let result = ctx.store.borrow_mut().catalog.delete_product(id, now);
                let (deleted, errors) = match result {
                    Ok(()) => (leaf(gid("Product", id)), vec![]),
                    Err(e) => (Val::null(), vec![e]),
                };
                Ok(record(
                    ctx,
                    "ProductDeletePayload",
                    vec![
                        ("deletedProductId", deleted),
                        ("userErrors", user_errors(ctx, "UserError", &errors, false)),
                    ],
                ))
            }
            "collectionCreate" => {
                let input = args.get("input").cloned().unwrap_or_default();
                let products = gids(input.get("products"), "Product")?;
                let result = ctx.store.borrow_mut().catalog.create_collection(
                    input
                        .get("title")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                    input.get("handle").and_then(Value::as_str),
                    &products,
                    now,
                );
                Ok(self.collection_payload("CollectionCreatePayload", result))
            }
            "collectionAddProducts" | "collectionRemoveProducts" => {
                let id = parse_gid(str_arg(args, "id").unwrap_or_default(), "Collection")?;
                let products = gids(args.get("productIds"), "Product")?;
                let add = name == "collectionAddProducts";
                let result = ctx
                    .store
                    .borrow_mut()
                    .catalog
                    .change_membership(id, &products, add, now)
                    .map(|()| id);
                let ty = if add {
                    "CollectionAddProductsPayload"
                } else {
                    "CollectionRemoveProductsPayload"
                };
                Ok(self.collection_payload(ty, result))
            }
            "inventoryAdjustQuantities" | "inventorySetQuantities" => {
                self.inventory(info, name, args)
            }
            "webhookSubscriptionCreate" => {
                let topic = str_arg(args, "topic").unwrap_or_default().to_lowercase();
                let topic = match topic.rsplit_once('_') {
                    Some((a, b)) => format!("{a}/{b}"),
                    None => topic,
                };
                let sub = args.get("webhookSubscription");
                let uri = sub
                    .and_then(|s| s.get("uri").or_else(|| s.get("callbackUrl")))
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !(uri.starts_with("http://") || uri.starts_with("https://")) {
                    let e = UserError::new(
                        &["webhookSubscription", "callbackUrl"],
                        "INVALID",
                        "Address is invalid",
                    );
                    return Ok(record(
                        ctx,
                        "WebhookSubscriptionCreatePayload",
                        vec![
                            ("webhookSubscription", Val::null()),
                            ("userErrors", user_errors(ctx, "UserError", &[e], false)),
                        ],
                    ));
                }
                let id = ctx.store.borrow_mut().catalog.id();
                let s = Subscription {
                    id: gid("WebhookSubscription", id),
                    topic,
                    url: uri.to_owned(),
                };
                ctx.new_subscriptions.borrow_mut().push(s.clone());
                Ok(record(
                    ctx,
                    "WebhookSubscriptionCreatePayload",
                    vec![
                        ("webhookSubscription", self.obj(Kind::Subscription(s))),
                        ("userErrors", Val::List(vec![])),
                    ],
                ))
            }
            _ => Err(err(format!("unknown field {name}"))),
        }
    }

    fn collection_payload(&self, ty: &str, result: Result<u64, UserError>) -> Val<'c> {
        let (collection, errors) = match result {
            Ok(id) => (self.obj(Kind::Collection(id)), vec![]),
            Err(e) => (Val::null(), vec![e]),
        };
        record(
            self.ctx,
            ty,
            vec![
                ("collection", collection),
                (
                    "userErrors",
                    user_errors(self.ctx, "UserError", &errors, false),
                ),
            ],
        )
    }

    /// `inventoryAdjustQuantities` (deltas; `@idempotent` required) and
    /// `inventorySetQuantities` (absolute values; `@idempotent` honoured when given).
    fn inventory(
        &self,
        info: &ResolveInfo<'_>,
        name: &str,
        args: &Map<String, Value>,
    ) -> Result<Val<'c>, FieldError> {
        let ctx = self.ctx;
        let absolute = name == "inventorySetQuantities";
        let (payload_ty, error_ty, list) = if absolute {
            (
                "InventorySetQuantitiesPayload",
                "InventorySetQuantitiesUserError",
                "quantities",
            )
        } else {
            (
                "InventoryAdjustQuantitiesPayload",
                "InventoryAdjustQuantitiesUserError",
                "changes",
            )
        };
        let key = info
            .field_selections()
            .first()
            .and_then(|f| ctx.idem_keys.get(f.response_key().as_str()))
            .cloned();
        if key.is_none() && !absolute {
            return Err(err(
                "The @idempotent directive is required for this mutation: add @idempotent(key: \"<uuid>\").",
            ));
        }
        let input = args.get("input").cloned().unwrap_or_default();
        let mut changes = Vec::new();
        for c in input
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let gid_of = |f: &str, kind: &str| {
                parse_gid(c.get(f).and_then(Value::as_str).unwrap_or_default(), kind)
            };
            changes.push(QuantityChange {
                item: gid_of("inventoryItemId", "InventoryItem")?,
                location: gid_of("locationId", "Location")?,
                amount: c
                    .get(if absolute { "quantity" } else { "delta" })
                    .and_then(Value::as_i64)
                    .unwrap_or_default(),
                change_from: c.get("changeFromQuantity").map(Value::as_i64),
                ledger_document_uri: c
                    .get("ledgerDocumentUri")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            });
        }
        let qname = input
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let reason = input
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let reference = input
            .get("referenceDocumentUri")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let canon = format!("{name}:{}", Value::Object(args.clone()));
        let payload = |group: Option<AdjustmentGroup>, errors: Vec<UserError>| {
            let group = match group {
                Some(g) => self.obj(Kind::Group(Rc::new(g))),
                None => Val::null(),
            };
            record(
                ctx,
                payload_ty,
                vec![
                    ("inventoryAdjustmentGroup", group),
                    ("userErrors", user_errors(ctx, error_ty, &errors, true)),
                ],
            )
        };
        let mut store = ctx.store.borrow_mut();
        if let Some(k) = &key {
            let concurrent = ctx.concurrent_keys.contains(k);
            match store.gql_idem.get(k) {
                Some(IdemEntry::InFlight { request }) if *request != ctx.request || concurrent => {
                    let e = UserError::new(
                        &[],
                        "IDEMPOTENCY_CONCURRENT_REQUEST",
                        "A request with this idempotency key is currently in progress, please try again.",
                    );
                    return Ok(payload(None, vec![e]));
                }
                Some(IdemEntry::Done { args, group, .. }) => {
                    if *args == canon {
                        return Ok(payload(Some(group.clone()), vec![]));
                    }
                    let e = UserError::new(
                        &[],
                        "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                        "The idempotency key was already used with different parameters.",
                    );
                    return Ok(payload(None, vec![e]));
                }
                _ => {}
            }
        }
        let now = ctx.now;
        let result = store
            .catalog
            .change_quantities(qname, reason, reference, &changes, absolute, now);
        if let Some(k) = key {
            match &result {
                Ok(group) => {
                    store.gql_idem.insert(
                        k,
                        IdemEntry::Done {
                            args: canon,
                            group: group.clone(),
                            at_ms: now,
                        },
                    );
                }
                // A rejected request leaves no trace: a corrected retry may use the key.
                Err(_) => {
                    store.gql_idem.remove(&k);
                }
            }
        }
        drop(store);
        Ok(match result {
            Ok(g) => payload(Some(g), vec![]),
            Err(e) => payload(None, e),
        })
    }
}

/// Products a query asks for, filtered through `Search`.
pub(crate) const PRODUCT_FIELDS: &[&str] = &[
    "id",
    "title",
    "handle",
    "status",
    "vendor",
    "product_type",
    "tag",
    "sku",
    "updated_at",
    "created_at",
];

struct Page {
    ids: Vec<(String, u64)>,
    has_next: bool,
}

/// A page of products in `sortKey` order (ID or UPDATED_AT, optionally reversed), after the
/// cursor, matching the search. The cursor holds the sort key and the id of the last product,
/// so a product updated while a client pages moves behind it instead of being skipped or
/// shuffling the pages still to come.
fn products_page(
    cat: &Catalog,
    args: &Map<String, Value>,
    search: &Search,
) -> Result<Page, FieldError> {
    let n = first(args)?;
    let by_updated = str_arg(args, "sortKey") == Some("UPDATED_AT");
    let reverse = args
        .get("reverse")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let cursor = match str_arg(args, "after") {
        Some(c) => {
            let raw = decode_cursor(c)?;
            let bad = || err(format!("Invalid cursor '{c}'"));
            Some(if by_updated {
                let rest = raw.strip_prefix("u:").ok_or_else(bad)?;
                let (at, id) = rest.split_once(':').ok_or_else(bad)?;
                (
                    at.parse::<i64>().map_err(|_| bad())?,
                    id.parse::<u64>().map_err(|_| bad())?,
                )
            } else {
                let id = raw
                    .strip_prefix("id:")
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(bad)?;
                (0, id)
            })
        }
        None => None,
    };
    let matches = |id: u64| {
        cat.products.get(&id).is_some_and(|p| {
            search.matches(|f| match f {
                "id" => vec![Field::Num(p.id)],
                "title" => vec![Field::Str(&p.title)],
                "handle" => vec![Field::Str(&p.handle)],
                "status" => vec![Field::Str(&p.status)],
                "vendor" => vec![Field::Str(&p.vendor)],
                "product_type" => vec![Field::Str(&p.product_type)],
                "tag" => p.tags.iter().map(|t| Field::Str(t)).collect(),
                "sku" => p
                    .variants
                    .iter()
                    .filter_map(|v| cat.variants.get(v).and_then(|v| v.sku.as_deref()))
                    .map(Field::Str)
                    .collect(),
                "updated_at" => vec![Field::Time(p.updated_at)],
                "created_at" => vec![Field::Time(p.created_at)],
                _ => vec![],
            })
        })
    };
    let mut out = Vec::with_capacity(n + 1);
    if by_updated {
        let keys: Box<dyn Iterator<Item = &(i64, u64)>> = match (reverse, cursor) {
            (false, Some(c)) => {
                Box::new(cat.by_update.range((Bound::Excluded(c), Bound::Unbounded)))
            }
            (false, None) => {
                // Start the walk at the `updated_at:>` bound instead of the oldest product.
                let from = search.updated_after().unwrap_or(i64::MIN);
                Box::new(cat.by_update.range((from, 0)..))
            }
            (true, Some(c)) => Box::new(cat.by_update.range(..c).rev()),
            (true, None) => Box::new(cat.by_update.iter().rev()),
        };
        for (at, id) in keys {
            if matches(*id) {
                out.push((encode_cursor(&format!("u:{at}:{id}")), *id));
                if out.len() > n {
                    break;
                }
            }
        }
    } else {
        let ids: Box<dyn Iterator<Item = &u64>> = match (reverse, cursor) {
            (false, Some((_, id))) => Box::new(
                cat.products
                    .range((Bound::Excluded(id), Bound::Unbounded))
                    .map(|e| e.0),
            ),
            (false, None) => Box::new(cat.products.keys()),
            (true, Some((_, id))) => Box::new(cat.products.range(..id).rev().map(|e| e.0)),
            (true, None) => Box::new(cat.products.keys().rev()),
        };
        for id in ids {
            if matches(*id) {
                out.push((encode_cursor(&format!("id:{id}")), *id));
                if out.len() > n {
                    break;
                }
            }
        }
    }
    let has_next = out.len() > n;
    out.truncate(n);
    Ok(Page { ids: out, has_next })
}

fn item_available(cat: &Catalog, item: u64) -> i64 {
    cat.levels
        .range((item, 0)..=(item, u64::MAX))
        .map(|(_, l)| l.available)
        .sum()
}

fn gids(v: Option<&Value>, kind: &str) -> Result<Vec<u64>, FieldError> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|g| parse_gid(g.as_str().unwrap_or_default(), kind))
        .collect()
}

/// `ProductSetInput` / `ProductUpdateInput` in the catalog's words.
fn product_spec(input: &Value) -> Result<ProductSpec, FieldError> {
    let s = |k: &str| input.get(k).and_then(Value::as_str).map(str::to_owned);
    let options = input
        .get("productOptions")
        .and_then(Value::as_array)
        .map(|opts| {
            opts.iter()
                .map(|o| {
                    let name = o
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let values = o
                        .get("values")
                        .and_then(Value::as_array)
                        .map(|vs| {
                            vs.iter()
                                .filter_map(|v| {
                                    v.get("name").and_then(Value::as_str).map(str::to_owned)
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    (name, values)
                })
                .collect()
        });
    let variants = match input.get("variants").and_then(Value::as_array) {
        None => None,
        Some(vs) => {
            let mut out = Vec::with_capacity(vs.len());
            for v in vs {
                let id = match v.get("id").and_then(Value::as_str) {
                    Some(g) => Some(parse_gid(g, "ProductVariant")?),
                    None => None,
                };
                let options = v
                    .get("optionValues")
                    .and_then(Value::as_array)
                    .map(|ovs| {
                        ovs.iter()
                            .map(|ov| {
                                let f = |k: &str| {
                                    ov.get(k)
                                        .and_then(Value::as_str)
                                        .unwrap_or_default()
                                        .to_owned()
                                };
                                (f("optionName"), f("name"))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let mut quantities = Vec::new();
                for q in v
                    .get("inventoryQuantities")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let loc = parse_gid(
                        q.get("locationId")
                            .and_then(Value::as_str)
                            .unwrap_or_default(),
                        "Location",
                    )?;
                    quantities.push((
                        loc,
                        q.get("quantity")
                            .and_then(Value::as_i64)
                            .unwrap_or_default(),
                    ));
                }
                let sku = v
                    .get("sku")
                    .or_else(|| v.get("inventoryItem").and_then(|i| i.get("sku")))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                out.push(VariantSpec {
                    id,
                    options,
                    sku,
                    price: money_arg(v.get("price")),
                    compare_at_price: v.get("compareAtPrice").map(|c| money_arg(Some(c))),
                    quantities,
                });
            }
            Some(out)
        }
    };
    Ok(ProductSpec {
        title: s("title"),
        handle: s("handle"),
        status: s("status"),
        vendor: s("vendor"),
        product_type: s("productType"),
        tags: strings(input.get("tags")),
        description_html: s("descriptionHtml"),
        collections: match input.get("collections") {
            Some(c) => Some(gids(Some(c), "Collection")?),
            None => None,
        },
        options,
        variants,
        files: match input.get("files").and_then(Value::as_array) {
            None => None,
            Some(fs) => {
                let mut out = Vec::with_capacity(fs.len());
                for f in fs {
                    let text = |k: &str| f.get(k).and_then(Value::as_str).map(str::to_owned);
                    out.push(FileSpec {
                        id: match f.get("id").and_then(Value::as_str) {
                            Some(g) => Some(parse_gid(g, "MediaImage")?),
                            None => None,
                        },
                        source: text("originalSource"),
                        alt: text("alt"),
                        filename: text("filename"),
                    });
                }
                Some(out)
            }
        },
    })
}

impl ObjectValue for Obj<'_> {
    fn type_name(&self) -> &str {
        match &self.kind {
            Kind::Query => "QueryRoot",
            Kind::Mutation => "Mutation",
            Kind::Shop => "Shop",
            Kind::Product(_) => "Product",
            Kind::Variant(_) => "ProductVariant",
            Kind::Item(_) => "InventoryItem",
            Kind::Level(..) => "InventoryLevel",
            Kind::Location(_) => "Location",
            Kind::Collection(_) => "Collection",
            Kind::Order(_) => "Order",
            Kind::Subscription(_) => "WebhookSubscription",
            Kind::Group(_) => "InventoryAdjustmentGroup",
            Kind::Record(ty, _) => ty,
        }
    }

    fn resolve_field<'a>(
        &'a self,
        info: &'a ResolveInfo<'a>,
    ) -> Result<ResolvedValue<'a>, FieldError> {
        self.field(info).map(Val::into_resolved)
    }
}
