//! Connections as Shopify pages them: opaque cursors, `first` within the allowed page size,
//! `pageInfo`, products by id or by `updated_at` with a search query.

use std::ops::Bound;

use apollo_compiler::resolvers::{FieldError, ResolveInfo};
use base64::Engine;
use serde_json::{Map, Value};

use super::*;
use crate::catalog::Catalog;
use crate::graphql::search::{Field, Search};

pub(crate) fn encode_cursor(raw: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(raw)
}

pub(crate) fn decode_cursor(c: &str) -> Result<String, FieldError> {
    base64::engine::general_purpose::STANDARD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| err(format!("Invalid cursor '{c}'")))
}

/// `first`, required and at most 250, as Shopify wants it.
pub(crate) fn first(args: &Map<String, Value>) -> Result<usize, FieldError> {
    match args.get("first").and_then(Value::as_i64) {
        None => Err(err("you must provide one of first or last")),
        Some(n) if !(0..=MAX_PAGE).contains(&n) => Err(err(format!(
            "The value of first must be between 0 and {MAX_PAGE}, inclusive"
        ))),
        Some(n) => Ok(n as usize),
    }
}

/// The cursor of an id-ordered page: `id:{n}`.
pub(crate) fn after_id(args: &Map<String, Value>) -> Result<Option<u64>, FieldError> {
    match str_arg(args, "after") {
        None => Ok(None),
        Some(c) => decode_cursor(c)?
            .strip_prefix("id:")
            .and_then(|n| n.parse().ok())
            .map(Some)
            .ok_or_else(|| err(format!("Invalid cursor '{c}'"))),
    }
}

pub(crate) fn id_range<T>(
    map: &std::collections::BTreeMap<u64, T>,
    after: Option<u64>,
) -> std::collections::btree_map::Range<'_, u64, T> {
    let start = after.map_or(Bound::Unbounded, Bound::Excluded);
    map.range((start, Bound::Unbounded))
}

/// The ids after the page cursor that `keep` accepts: one page and one more (which says
/// whether there is a next page).
pub(crate) fn page_ids<T>(
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
pub(crate) fn set_after(set: &std::collections::BTreeSet<u64>, after: Option<u64>) -> Vec<u64> {
    set.range((
        after.map_or(Bound::Unbounded, Bound::Excluded),
        Bound::Unbounded,
    ))
    .copied()
    .collect()
}

pub(crate) struct Page {
    pub(crate) ids: Vec<(String, u64)>,
    pub(crate) has_next: bool,
}

/// A page of products in `sortKey` order (ID or UPDATED_AT, optionally reversed), after the
/// cursor, matching the search. The cursor holds the sort key and the id of the last product,
/// so a product updated while a client pages moves behind it instead of being skipped or
/// shuffling the pages still to come.
pub(crate) fn products_page(
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
            // Start the walk at the `id:>` bound (a bulk export split by id ranges).
            (false, None) => Box::new(
                cat.products
                    .range(search.id_from().unwrap_or(0)..)
                    .map(|e| e.0),
            ),
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

impl<'c> Obj<'c> {
    pub(crate) fn connection(
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
    pub(crate) fn id_connection(
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
    pub(crate) fn position_connection(
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
}
