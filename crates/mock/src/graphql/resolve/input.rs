//! Reading arguments: ids, strings, money, and `ProductSetInput` into a `ProductSpec`.

use apollo_compiler::resolvers::FieldError;
use serde_json::{Map, Value};

use super::*;
use crate::catalog::{FileSpec, ProductSpec, VariantSpec};

pub(crate) fn str_arg<'a>(args: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    args.get(name).and_then(Value::as_str)
}

pub(crate) fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v.and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    })
}

pub(crate) fn money_arg(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(crate) fn gids(v: Option<&Value>, kind: &str) -> Result<Vec<u64>, FieldError> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|g| parse_gid(g.as_str().unwrap_or_default(), kind))
        .collect()
}

/// `ProductSetInput` / `ProductUpdateInput` in the catalog's words.
pub(crate) fn product_spec(input: &Value) -> Result<ProductSpec, FieldError> {
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

/// The number in `gid://shopify/{kind}/{n}` (a query string after it is ignored).
pub(crate) fn parse_gid(s: &str, kind: &str) -> Result<u64, FieldError> {
    s.strip_prefix("gid://shopify/")
        .and_then(|r| r.strip_prefix(kind))
        .and_then(|r| r.strip_prefix('/'))
        .and_then(|r| r.split('?').next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| err(format!("Invalid global id '{s}'")))
}
