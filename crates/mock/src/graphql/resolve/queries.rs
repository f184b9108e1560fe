//! The query root's fields: products, variants, collections, inventory, locations, orders,
//! webhook subscriptions, the shop.

use std::ops::Bound;

use apollo_compiler::resolvers::{FieldError, ResolveInfo};
use serde_json::{Map, Value};

use super::*;
use crate::catalog::Catalog;
use crate::graphql::search::{Field, Search};

pub(crate) fn item_available(cat: &Catalog, item: u64) -> i64 {
    cat.levels
        .range((item, 0)..=(item, u64::MAX))
        .map(|(_, l)| l.available)
        .sum()
}

impl<'c> Obj<'c> {
    pub(crate) fn search(&self, args: &Map<String, Value>, known: &[&str]) -> Search {
        let mut s = Search::parse(str_arg(args, "query"));
        s.check_fields(known);
        self.ctx
            .warnings
            .borrow_mut()
            .extend(s.warnings.iter().cloned());
        s
    }

    pub(crate) fn query_field(
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
            "productsCount" => {
                // Counted up to `limit` (Shopify's default 10,000): `AT_LEAST` past it.
                let limit = args.get("limit").and_then(Value::as_i64).unwrap_or(10_000);
                let limit = usize::try_from(limit.max(0)).unwrap_or(0);
                let n = cat.products.len();
                let (count, precision) = if n > limit {
                    (limit, "AT_LEAST")
                } else {
                    (n, "EXACT")
                };
                Ok(record(
                    self.ctx,
                    "Count",
                    vec![("count", leaf(count)), ("precision", leaf(precision))],
                ))
            }
            "bulkOperation" | "currentBulkOperation" => {
                drop(store);
                self.bulk_query_field(name, args)
            }
            "currentAppInstallation" => {
                let scopes = self
                    .ctx
                    .scopes
                    .iter()
                    .map(|h| record(self.ctx, "AccessScope", vec![("handle", leaf(h.clone()))]))
                    .collect();
                Ok(record(
                    self.ctx,
                    "AppInstallation",
                    vec![("accessScopes", Val::List(scopes))],
                ))
            }
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
                let by_sku: Option<Vec<u64>> = search.exact("sku").map(|skus| {
                    let mut ids: Vec<u64> = skus
                        .iter()
                        .filter_map(|sku| cat.skus.get(sku))
                        .flat_map(|set| {
                            set.range((
                                after.map_or(Bound::Unbounded, Bound::Excluded),
                                Bound::Unbounded,
                            ))
                            .copied()
                        })
                        .collect();
                    ids.sort_unstable();
                    ids.dedup();
                    ids
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
}
