//! Field resolvers: one `Obj` per GraphQL object, read from (and for mutations written to) the
//! store that the request runs against. apollo-compiler's executor walks the query and calls
//! `resolve_field` for what was selected, so only selected data is built.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use apollo_compiler::resolvers::{FieldError, ObjectValue, ResolveInfo, ResolvedValue};
use serde_json::{Map, Value, json};

mod bulk;
mod connections;
mod input;
mod mutations;
mod queries;

use crate::catalog::{AdjustmentGroup, MediaFile, UserError, gid, iso};
use crate::platform::Store;
use crate::webhooks::Subscription;
use connections::*;
use input::*;
use queries::*;

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
    /// What the caller's token was granted.
    pub scopes: Vec<String>,
    pub new_subscriptions: RefCell<Vec<Subscription>>,
    pub warnings: RefCell<Vec<String>>,
    /// Where the platform answers (result files and staged uploads are under it).
    pub base_url: String,
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
pub(crate) enum Kind<'c> {
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
                "currencyCode" => leaf(cat.currency.clone()),
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
