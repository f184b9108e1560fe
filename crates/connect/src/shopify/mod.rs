//! The Shopify connector: the Admin GraphQL API (2026-04) through the shared client. Every
//! call reserves its cost in the store's budget first; `extensions.cost.throttleStatus` on
//! each response corrects the budget (never hard-coded limits), and `THROTTLED` inside a 200
//! is a rate limit like a 429.

pub mod bulk;
pub mod model;
mod queries;

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::auth::Credentials;
use crate::budget::{BucketShape, ServerBucket};
use crate::client::{Answer, Call, Client, Verdict};
use crate::error::{ConnectError, UserError};
use model::{
    GqlMedia, GqlProduct, GqlVariantConnection, InventoryDelta, More, Priced, PricedVariant,
    Product, ProductInput, VariantRef,
};

pub const API_VERSION: &str = "2026-04";

/// Until the first response says otherwise: the smallest bucket Shopify has had (1,000
/// points restoring 50/s), so a fresh budget never overshoots.
pub const GRAPHQL_SHAPE: BucketShape = BucketShape {
    capacity: 1000.0,
    restore_per_s: 50.0,
};

/// Re-reads and retries of a compare-and-set that found the quantity changed.
const CAS_ATTEMPTS: usize = 5;

#[derive(Clone)]
pub struct ShopifyConnector {
    client: Client,
    url: String,
    key: String,
    creds: Arc<dyn Credentials>,
}

impl std::fmt::Debug for ShopifyConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopifyConnector")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Reads `extensions.cost` and a `THROTTLED` error out of a GraphQL answer.
pub fn graphql_verdict(a: &Answer) -> Result<Verdict, ConnectError> {
    let body: Value = serde_json::from_slice(&a.body)
        .map_err(|e| ConnectError::data("graphql", "$", format!("not JSON: {e}")))?;
    let cost = &body["extensions"]["cost"];
    let status = &cost["throttleStatus"];
    let max = status["maximumAvailable"].as_f64();
    let available = status["currentlyAvailable"].as_f64();
    let restore = status["restoreRate"].as_f64();
    let server = ServerBucket {
        level: max.zip(available).map(|(m, a)| (m - a).max(0.0)),
        capacity: max,
        restore_per_s: restore,
    };
    let throttled = body["errors"]
        .as_array()
        .is_some_and(|errs| errs.iter().any(|e| e["extensions"]["code"] == "THROTTLED"));
    let throttled = throttled.then(|| {
        // Until the bucket has restored what the request asked for.
        let requested = cost["requestedQueryCost"].as_f64().unwrap_or(0.0);
        let short = (requested - available.unwrap_or(0.0)).max(0.0);
        Duration::from_secs_f64((short / restore.unwrap_or(50.0).max(1.0)).max(0.1))
    });
    Ok(Verdict {
        throttled,
        actual_cost: cost["actualQueryCost"].as_f64(),
        server,
    })
}

fn parse<T: DeserializeOwned>(endpoint: &str, path: &str, v: &Value) -> Result<T, ConnectError> {
    serde_json::from_value(v.clone()).map_err(|e| ConnectError::data(endpoint, path, e.to_string()))
}

fn ms(iso: &str, endpoint: &str) -> Result<i64, ConnectError> {
    iso.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|e| ConnectError::data(endpoint, "updatedAt", e.to_string()))
}

/// `userErrors` of a mutation payload: an error when there are any.
fn check_user_errors(endpoint: &str, payload: &Value) -> Result<(), ConnectError> {
    let errors: Vec<UserError> = parse(endpoint, "userErrors", &payload["userErrors"])?;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConnectError::UserErrors {
            endpoint: endpoint.to_owned(),
            errors,
        })
    }
}

impl ShopifyConnector {
    /// `url` is the store's GraphQL endpoint (`…/admin/api/2026-04/graphql.json`).
    pub fn new(client: Client, url: &str, creds: Arc<dyn Credentials>) -> ShopifyConnector {
        ShopifyConnector {
            key: format!("shopify:{url}"),
            client,
            url: url.to_owned(),
            creds,
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Sends one operation; its `data`, or the error it is.
    pub async fn graphql(
        &self,
        endpoint: &str,
        query: &str,
        variables: Value,
        cost: f64,
    ) -> Result<Value, ConnectError> {
        let body = json!({ "query": query, "variables": variables });
        let call = Call {
            key: &self.key,
            endpoint,
            cost,
            shape: GRAPHQL_SHAPE,
        };
        let answer = self
            .client
            .send(
                call,
                self.creds.as_ref(),
                |http, token| {
                    http.post(&self.url)
                        .header("x-shopify-access-token", token.expose())
                        .json(&body)
                },
                graphql_verdict,
            )
            .await?;
        let mut v: Value = serde_json::from_slice(&answer.body)
            .map_err(|e| ConnectError::data(endpoint, "$", e.to_string()))?;
        if let Some(errors) = v
            .get("errors")
            .and_then(Value::as_array)
            .filter(|e| !e.is_empty())
        {
            // Errors in a 200 that are not throttling: our query or its input is wrong.
            let message = errors
                .iter()
                .filter_map(|e| e["message"].as_str())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(ConnectError::Client {
                endpoint: endpoint.to_owned(),
                status: answer.status,
                message: String::new(),
                upstream: message,
            });
        }
        match v.get_mut("data") {
            Some(d) if d.is_object() => Ok(d.take()),
            _ => Err(ConnectError::data(endpoint, "data", "missing")),
        }
    }

    fn product_from(&self, endpoint: &str, g: GqlProduct) -> Result<(Product, More), ConnectError> {
        let more = More {
            variants: g
                .variants
                .page_info
                .has_next_page
                .then_some(g.variants.page_info.end_cursor)
                .flatten(),
            media: g.media.as_ref().is_some_and(|m| m.page_info.has_next_page),
        };
        Ok((
            Product {
                updated_at: ms(&g.updated_at, endpoint)?,
                id: g.id,
                title: g.title,
                handle: g.handle,
                status: g.status,
                vendor: g.vendor,
                product_type: g.product_type,
                tags: g.tags,
                description_html: g.description_html,
                collections: g.collections.map(|c| c.nodes).unwrap_or_default(),
                images: g.media.map(GqlMedia::images).unwrap_or_default(),
                variants: g.variants.nodes.into_iter().map(Into::into).collect(),
            },
            more,
        ))
    }

    /// Reads what did not fit in a product's first read: the rest of its variants, page by
    /// page, and its images beyond the first page.
    async fn complete(&self, p: &mut Product, more: More) -> Result<(), ConnectError> {
        let mut after = more.variants;
        while let Some(cursor) = after {
            let endpoint = "query Variants";
            let d = self
                .graphql(
                    endpoint,
                    queries::VARIANTS,
                    json!({"id": p.id, "after": cursor}),
                    queries::VARIANTS_COST,
                )
                .await?;
            let conn: GqlVariantConnection =
                parse(endpoint, "product.variants", &d["product"]["variants"])?;
            p.variants.extend(conn.nodes.into_iter().map(Into::into));
            after = conn
                .page_info
                .has_next_page
                .then_some(conn.page_info.end_cursor)
                .flatten();
        }
        if more.media {
            let endpoint = "query Media";
            let d = self
                .graphql(
                    endpoint,
                    queries::MEDIA,
                    json!({"id": p.id}),
                    queries::MEDIA_COST,
                )
                .await?;
            let media: GqlMedia = parse(endpoint, "product.media", &d["product"]["media"])?;
            p.images = media.images();
        }
        Ok(())
    }

    /// A product with all its variants, or `None` if the store has none with that id.
    pub async fn product(&self, id: &str) -> Result<Option<Product>, ConnectError> {
        let endpoint = "query Product";
        let q = format!("{}{}", queries::PRODUCT, queries::PRODUCT_FIELDS);
        let d = self
            .graphql(endpoint, &q, json!({"id": id}), queries::PRODUCT_COST)
            .await?;
        if d["product"].is_null() {
            return Ok(None);
        }
        let g: GqlProduct = parse(endpoint, "product", &d["product"])?;
        let (mut p, after) = self.product_from(endpoint, g)?;
        self.complete(&mut p, after).await?;
        Ok(Some(p))
    }

    /// One page of products updated at or after `since_ms`, oldest first; pass the returned
    /// cursor back for the next page (`None`: no more). Memory is one page, whatever the
    /// catalog's size.
    pub async fn products_updated_since(
        &self,
        since_ms: Option<i64>,
        after: Option<&str>,
    ) -> Result<(Vec<Product>, Option<String>), ConnectError> {
        let endpoint = "query Changed";
        let q = format!("{}{}", queries::PRODUCTS_SINCE, queries::PRODUCT_FIELDS);
        let filter = since_ms
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
            .map(|t| format!("updated_at:>='{t}'"));
        let d = self
            .graphql(
                endpoint,
                &q,
                json!({"q": filter, "after": after}),
                queries::PRODUCTS_SINCE_COST,
            )
            .await?;
        let nodes: Vec<GqlProduct> = parse(endpoint, "products.nodes", &d["products"]["nodes"])?;
        let next = if d["products"]["pageInfo"]["hasNextPage"] == true {
            d["products"]["pageInfo"]["endCursor"]
                .as_str()
                .map(str::to_owned)
        } else {
            None
        };
        let mut out = Vec::with_capacity(nodes.len());
        for g in nodes {
            let (mut p, more) = self.product_from(endpoint, g)?;
            self.complete(&mut p, more).await?;
            out.push(p);
        }
        Ok((out, next))
    }

    /// How many products the store holds, counted up to `limit` (more: `limit + 1`).
    pub async fn products_count(&self, limit: u64) -> Result<u64, ConnectError> {
        let endpoint = "query productsCount";
        let limit = limit.min(i32::MAX as u64 - 1);
        let d = self
            .graphql(
                endpoint,
                "query Count($limit: Int) { productsCount(limit: $limit) { count precision } }",
                json!({ "limit": limit + 1 }),
                1.0,
            )
            .await?;
        d["productsCount"]["count"]
            .as_u64()
            .ok_or_else(|| ConnectError::data(endpoint, "productsCount.count", "expected a number"))
    }

    /// Products carrying `tag` exactly (at most a few: ferry's own tags are unique).
    pub async fn products_tagged(&self, tag: &str) -> Result<Vec<Product>, ConnectError> {
        let endpoint = "query Tagged";
        let q = format!("{}{}", queries::PRODUCTS_TAGGED, queries::PRODUCT_FIELDS);
        let quoted = tag.replace('\\', "\\\\").replace('"', "\\\"");
        let d = self
            .graphql(
                endpoint,
                &q,
                json!({"q": format!("tag:\"{quoted}\"")}),
                queries::PRODUCTS_TAGGED_COST,
            )
            .await?;
        let nodes: Vec<GqlProduct> = parse(endpoint, "products.nodes", &d["products"]["nodes"])?;
        let mut out = Vec::with_capacity(nodes.len());
        for g in nodes {
            let (mut p, more) = self.product_from(endpoint, g)?;
            if !p.tags.iter().any(|t| t == tag) {
                continue;
            }
            self.complete(&mut p, more).await?;
            out.push(p);
        }
        Ok(out)
    }

    /// One page of orders whose number is above `after_number`, oldest first, and the
    /// cursor of the next page.
    pub async fn orders_after(
        &self,
        after_number: u64,
        cursor: Option<&str>,
    ) -> Result<(Vec<model::Order>, Option<String>), ConnectError> {
        let endpoint = "query Orders";
        let d = self
            .graphql(
                endpoint,
                queries::ORDERS_AFTER,
                json!({"q": format!("id:>{after_number}"), "after": cursor}),
                queries::ORDERS_AFTER_COST,
            )
            .await?;
        let nodes = d["orders"]["nodes"]
            .as_array()
            .ok_or_else(|| ConnectError::data(endpoint, "orders.nodes", "expected a list"))?;
        let mut out = Vec::with_capacity(nodes.len());
        for n in nodes {
            let id = n["id"]
                .as_str()
                .ok_or_else(|| ConnectError::data(endpoint, "orders.nodes.id", "missing"))?;
            let number = n["legacyResourceId"]
                .as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| {
                    ConnectError::data(endpoint, "orders.nodes.legacyResourceId", "not a number")
                })?;
            let lines = n["lineItems"]["nodes"]
                .as_array()
                .map(|ls| {
                    ls.iter()
                        .map(|l| model::OrderLine {
                            variant_id: l["variant"]["id"].as_str().map(str::to_owned),
                            sku: l["sku"].as_str().map(str::to_owned),
                            quantity: l["quantity"].as_i64().unwrap_or(0),
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(model::Order {
                id: id.to_owned(),
                number,
                lines,
            });
        }
        let next = if d["orders"]["pageInfo"]["hasNextPage"] == true {
            d["orders"]["pageInfo"]["endCursor"]
                .as_str()
                .map(str::to_owned)
        } else {
            None
        };
        Ok((out, next))
    }

    /// Variants whose SKU is exactly `sku` (SKUs are not unique on Shopify: may be several).
    pub async fn variants_by_sku(&self, sku: &str) -> Result<Vec<VariantRef>, ConnectError> {
        let endpoint = "query BySku";
        let quoted = sku.replace('\\', "\\\\").replace('"', "\\\"");
        let d = self
            .graphql(
                endpoint,
                queries::VARIANTS_BY_SKU,
                json!({"q": format!("sku:\"{quoted}\"")}),
                queries::VARIANTS_BY_SKU_COST,
            )
            .await?;
        let sku = sku.to_lowercase();
        Ok(variant_refs(endpoint, &d, |s| s.to_lowercase() == sku)?
            .into_iter()
            .map(|(v, _)| v)
            .collect())
    }

    /// The variants of `skus` (compared without case) with their current prices, and the
    /// shop's currency: one call, whatever the number of SKUs (at most 100).
    pub async fn priced_by_skus(&self, skus: &[String]) -> Result<Priced, ConnectError> {
        let endpoint = "query Priced";
        if skus.is_empty() || skus.len() > 100 {
            return Err(ConnectError::Config(
                "priced_by_skus takes 1 to 100 SKUs".into(),
            ));
        }
        let q = skus
            .iter()
            .map(|s| format!("sku:\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect::<Vec<_>>()
            .join(" OR ");
        // Room for a SKU carried by several variants (refused by the caller, so it must be seen).
        let first = (skus.len() * 2 + 2).min(250);
        let d = self
            .graphql(
                endpoint,
                queries::PRICED_BY_SKUS,
                json!({"q": q, "first": first}),
                queries::priced_by_skus_cost(first),
            )
            .await?;
        let currency = d["shop"]["currencyCode"]
            .as_str()
            .ok_or_else(|| ConnectError::data(endpoint, "shop.currencyCode", "expected a string"))?
            .to_owned();
        let lower: Vec<String> = skus.iter().map(|s| s.to_lowercase()).collect();
        let variants = variant_refs(endpoint, &d, |s| lower.contains(&s.to_lowercase()))?
            .into_iter()
            .map(|(variant, n)| {
                let price = n["price"].as_str().map(str::to_owned).ok_or_else(|| {
                    ConnectError::data(endpoint, "productVariants.nodes.price", "expected a string")
                })?;
                Ok(PricedVariant { variant, price })
            })
            .collect::<Result<_, ConnectError>>()?;
        Ok(Priced { currency, variants })
    }

    /// Creates or updates a product to be exactly `input` in the fields ferry owns. Variants
    /// are always sent whole (`productSet` deletes the ones left out).
    pub async fn upsert(
        &self,
        existing: Option<&str>,
        input: &ProductInput,
    ) -> Result<Product, ConnectError> {
        let endpoint = "mutation productSet";
        let mut options: Vec<(String, Vec<String>)> = Vec::new();
        for v in &input.variants {
            for (name, value) in &v.options {
                match options.iter_mut().find(|o| &o.0 == name) {
                    Some(o) if !o.1.contains(value) => o.1.push(value.clone()),
                    Some(_) => {}
                    None => options.push((name.clone(), vec![value.clone()])),
                }
            }
        }
        let variants: Vec<Value> = input
            .variants
            .iter()
            .map(|v| {
                let mut x = json!({
                    "optionValues": v.options.iter().map(|(n, val)| json!({"optionName": n, "name": val})).collect::<Vec<_>>(),
                    "price": v.price,
                    "sku": v.sku,
                });
                if let Some(id) = &v.id {
                    x["id"] = json!(id);
                }
                x
            })
            .collect();
        let mut set = json!({
            "title": input.title,
            "tags": input.tags,
            "productOptions": options.iter().map(|(n, vals)| json!({"name": n, "values": vals.iter().map(|v| json!({"name": v})).collect::<Vec<_>>()})).collect::<Vec<_>>(),
            "variants": variants,
        });
        if let Some(images) = &input.images {
            set["files"] = images
                .iter()
                .map(|i| {
                    let mut f = json!({"alt": i.alt, "contentType": "IMAGE"});
                    if let Some(id) = &i.id {
                        f["id"] = json!(id);
                    }
                    if let Some(src) = &i.source {
                        f["originalSource"] = json!(src);
                    }
                    if let Some(name) = &i.filename {
                        f["filename"] = json!(name);
                    }
                    f
                })
                .collect();
        }
        for (k, v) in [
            ("handle", &input.handle),
            ("status", &input.status),
            ("vendor", &input.vendor),
            ("productType", &input.product_type),
            ("descriptionHtml", &input.description_html),
        ] {
            if let Some(v) = v {
                set[k] = json!(v);
            }
        }
        let identifier = existing.map(|id| json!({"id": id}));
        let q = format!("{}{}", queries::PRODUCT_SET, queries::PRODUCT_FIELDS);
        let d = self
            .graphql(
                endpoint,
                &q,
                json!({"input": set, "identifier": identifier}),
                queries::MUTATION_COST,
            )
            .await?;
        check_user_errors(endpoint, &d["productSet"])?;
        let g: GqlProduct = parse(endpoint, "productSet.product", &d["productSet"]["product"])?;
        let (mut p, more) = self.product_from(endpoint, g)?;
        self.complete(&mut p, more).await?;
        Ok(p)
    }

    /// Archives a product (what a deletion in the parent does to its copies).
    pub async fn archive(&self, id: &str) -> Result<(), ConnectError> {
        let endpoint = "mutation productUpdate";
        let d = self
            .graphql(
                endpoint,
                queries::ARCHIVE,
                json!({"id": id}),
                queries::MUTATION_COST,
            )
            .await?;
        check_user_errors(endpoint, &d["productUpdate"])
    }

    /// The collection with this handle, if the store has one.
    pub async fn collection_by_handle(
        &self,
        handle: &str,
    ) -> Result<Option<model::Collection>, ConnectError> {
        let endpoint = "query ColByHandle";
        let quoted = handle.replace('\\', "\\\\").replace('"', "\\\"");
        let d = self
            .graphql(
                endpoint,
                queries::COLLECTION_BY_HANDLE,
                json!({"q": format!("handle:\"{quoted}\"")}),
                queries::COLLECTION_BY_HANDLE_COST,
            )
            .await?;
        let nodes: Vec<model::Collection> =
            parse(endpoint, "collections.nodes", &d["collections"]["nodes"])?;
        Ok(nodes.into_iter().find(|c| c.handle == handle))
    }

    /// Creates an empty collection.
    pub async fn create_collection(
        &self,
        title: &str,
        handle: &str,
    ) -> Result<model::Collection, ConnectError> {
        let endpoint = "mutation collectionCreate";
        let d = self
            .graphql(
                endpoint,
                queries::COLLECTION_CREATE,
                json!({"input": {"title": title, "handle": handle}}),
                queries::MUTATION_COST,
            )
            .await?;
        check_user_errors(endpoint, &d["collectionCreate"])?;
        parse(
            endpoint,
            "collectionCreate.collection",
            &d["collectionCreate"]["collection"],
        )
    }

    /// Makes `collections` the product's exact collection membership.
    pub async fn set_collections(
        &self,
        product: &str,
        collections: &[String],
    ) -> Result<(), ConnectError> {
        let endpoint = "mutation productSet collections";
        let q = "mutation Cols($input: ProductSetInput!, $identifier: ProductSetIdentifiers) {
            productSet(input: $input, identifier: $identifier) { product { id } userErrors { field message code } } }";
        let d = self
            .graphql(
                endpoint,
                q,
                json!({"input": {"collections": collections}, "identifier": {"id": product}}),
                queries::MUTATION_COST,
            )
            .await?;
        check_user_errors(endpoint, &d["productSet"])
    }

    /// Adjusts `available` by deltas. `key` must be the same for every retry of one intent
    /// (derive it from the event that caused it): a retry then never applies twice.
    pub async fn adjust_inventory(
        &self,
        key: &str,
        reason: &str,
        changes: &[InventoryDelta],
    ) -> Result<Vec<i64>, ConnectError> {
        let endpoint = "mutation inventoryAdjustQuantities";
        let input = json!({
            "name": "available",
            "reason": reason,
            "changes": changes.iter().map(|c| json!({
                "delta": c.delta,
                "inventoryItemId": c.inventory_item_id,
                "locationId": c.location_id,
                // Explicit null opts out of the check; 2026-04 refuses a missing field.
                "changeFromQuantity": c.change_from,
            })).collect::<Vec<_>>(),
        });
        let d = self
            .graphql(
                endpoint,
                queries::ADJUST,
                json!({"input": input, "key": key}),
                queries::MUTATION_COST,
            )
            .await?;
        let payload = &d["inventoryAdjustQuantities"];
        check_user_errors(endpoint, payload)?;
        let changes = payload["inventoryAdjustmentGroup"]["changes"]
            .as_array()
            .ok_or_else(|| {
                ConnectError::data(
                    endpoint,
                    "inventoryAdjustmentGroup.changes",
                    "expected a list",
                )
            })?;
        Ok(changes
            .iter()
            .filter_map(|c| c["quantityAfterChange"].as_i64())
            .collect())
    }

    /// The `available` quantity of an item at a location.
    pub async fn available(&self, item: &str, location: &str) -> Result<Option<i64>, ConnectError> {
        let endpoint = "query Level";
        let d = self
            .graphql(
                endpoint,
                queries::LEVEL,
                json!({"item": item, "location": location}),
                queries::LEVEL_COST,
            )
            .await?;
        let qs = &d["inventoryItem"]["inventoryLevel"]["quantities"];
        if qs.is_null() {
            return Ok(None);
        }
        let qs = qs.as_array().ok_or_else(|| {
            ConnectError::data(endpoint, "inventoryLevel.quantities", "expected a list")
        })?;
        Ok(qs
            .iter()
            .find(|q| q["name"] == "available")
            .and_then(|q| q["quantity"].as_i64()))
    }

    /// Sets `available` to `quantity` with compare-and-set: `believed` is the quantity the
    /// caller thinks is there (or `None` to read it first). When someone changed it meanwhile,
    /// re-reads and tries again, a few times.
    pub async fn set_inventory(
        &self,
        item: &str,
        location: &str,
        quantity: i64,
        believed: Option<i64>,
    ) -> Result<(), ConnectError> {
        let endpoint = "mutation inventorySetQuantities";
        let mut expected = believed;
        for _ in 0..CAS_ATTEMPTS {
            let current =
                match expected {
                    Some(e) => e,
                    None => self.available(item, location).await?.ok_or_else(|| {
                        ConnectError::Client {
                            endpoint: endpoint.to_owned(),
                            status: 404,
                            message: format!("{item} is not stocked at {location}"),
                            upstream: String::new(),
                        }
                    })?,
                };
            let input = json!({
                "name": "available",
                "reason": "correction",
                "quantities": [{"inventoryItemId": item, "locationId": location, "quantity": quantity, "changeFromQuantity": current}],
            });
            let d = self
                .graphql(
                    endpoint,
                    queries::SET,
                    json!({"input": input}),
                    queries::MUTATION_COST,
                )
                .await?;
            match check_user_errors(endpoint, &d["inventorySetQuantities"]) {
                Ok(()) => return Ok(()),
                Err(e) if e.has_code("CHANGE_FROM_QUANTITY_STALE") => {
                    metrics::counter!("ferry_connector_cas_retries_total").increment(1);
                    expected = None;
                }
                Err(e) => return Err(e),
            }
        }
        Err(ConnectError::transient(
            endpoint,
            format!("the quantity kept changing over {CAS_ATTEMPTS} compare-and-set attempts"),
        ))
    }

    /// Subscribes `uri` to a topic (`PRODUCTS_UPDATE`, `INVENTORY_LEVELS_UPDATE`, …).
    pub async fn subscribe(&self, topic: &str, uri: &str) -> Result<String, ConnectError> {
        let endpoint = "mutation webhookSubscriptionCreate";
        let d = self
            .graphql(
                endpoint,
                queries::SUBSCRIBE,
                json!({"topic": topic, "uri": uri}),
                queries::MUTATION_COST,
            )
            .await?;
        check_user_errors(endpoint, &d["webhookSubscriptionCreate"])?;
        d["webhookSubscriptionCreate"]["webhookSubscription"]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ConnectError::data(endpoint, "webhookSubscription.id", "missing"))
    }

    /// The scopes the token in use holds, comma-separated (`read_products,write_products`).
    pub async fn granted_scopes(&self) -> Result<String, ConnectError> {
        let endpoint = "query AccessScopes";
        let d = self
            .graphql(
                endpoint,
                queries::ACCESS_SCOPES,
                json!({}),
                queries::ACCESS_SCOPES_COST,
            )
            .await?;
        let scopes = d["currentAppInstallation"]["accessScopes"]
            .as_array()
            .ok_or_else(|| {
                ConnectError::data(
                    endpoint,
                    "currentAppInstallation.accessScopes",
                    "expected a list",
                )
            })?;
        Ok(scopes
            .iter()
            .filter_map(|s| s["handle"].as_str())
            .collect::<Vec<_>>()
            .join(","))
    }

    /// The store's locations: (id, name).
    pub async fn locations(&self) -> Result<Vec<(String, String)>, ConnectError> {
        let endpoint = "query Locations";
        let d = self
            .graphql(
                endpoint,
                queries::LOCATIONS,
                json!({}),
                queries::LOCATIONS_COST,
            )
            .await?;
        let nodes = d["locations"]["nodes"]
            .as_array()
            .ok_or_else(|| ConnectError::data(endpoint, "locations.nodes", "expected a list"))?;
        Ok(nodes
            .iter()
            .filter_map(|n| Some((n["id"].as_str()?.to_owned(), n["name"].as_str()?.to_owned())))
            .collect())
    }
}

/// The variants of a `productVariants` answer whose SKU `wanted` accepts (the search is by
/// token, so near matches come back too), each with its node.
fn variant_refs<'d>(
    endpoint: &str,
    d: &'d Value,
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<(VariantRef, &'d Value)>, ConnectError> {
    let nodes = d["productVariants"]["nodes"]
        .as_array()
        .ok_or_else(|| ConnectError::data(endpoint, "productVariants.nodes", "expected a list"))?;
    let mut out = Vec::new();
    for n in nodes {
        let field = |path: &str, v: &Value| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| ConnectError::data(endpoint, path, "expected a string"))
        };
        let found_sku = n["sku"].as_str().map(str::to_owned);
        if !found_sku.as_deref().is_some_and(&wanted) {
            continue;
        }
        out.push((
            VariantRef {
                id: field("productVariants.nodes.id", &n["id"])?,
                sku: found_sku,
                product_id: field("productVariants.nodes.product.id", &n["product"]["id"])?,
                inventory_item_id: field(
                    "productVariants.nodes.inventoryItem.id",
                    &n["inventoryItem"]["id"],
                )?,
            },
            n,
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: Value) -> Answer {
        Answer {
            status: 200,
            headers: reqwest::header::HeaderMap::new(),
            body: serde_json::to_vec(&body).unwrap_or_default().into(),
        }
    }

    #[test]
    fn throttled_inside_a_200_is_a_rate_limit_until_the_points_are_back() {
        let v = graphql_verdict(&answer(json!({
            "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
            "extensions": {"cost": {"requestedQueryCost": 152, "actualQueryCost": null,
                "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 52, "restoreRate": 100.0}}}
        })))
        .unwrap_or_default();
        assert_eq!(
            v.throttled,
            Some(Duration::from_secs(1)),
            "100 points short at 100/s"
        );
        assert_eq!(v.actual_cost, None);
        assert_eq!(v.server.level, Some(1948.0));
        assert_eq!(v.server.capacity, Some(2000.0));
        assert_eq!(v.server.restore_per_s, Some(100.0));

        let ok = graphql_verdict(&answer(json!({
            "data": {},
            "extensions": {"cost": {"requestedQueryCost": 52, "actualQueryCost": 7,
                "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 993, "restoreRate": 50.0}}}
        })))
        .unwrap_or_default();
        assert_eq!((ok.throttled, ok.actual_cost), (None, Some(7.0)));
        assert!(
            graphql_verdict(&answer(json!("<html>"))).is_ok(),
            "no cost: nothing to learn"
        );
    }
}
