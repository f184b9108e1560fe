//! The mutation root's fields: `productSet`, `productUpdate`, `productDelete`, collections,
//! inventory adjustments and sets (with `@idempotent` and compare-and-set), webhook
//! subscriptions.

use std::rc::Rc;

use apollo_compiler::resolvers::{FieldError, ResolveInfo};
use serde_json::{Map, Value};

use super::*;
use crate::catalog::{AdjustmentGroup, QuantityChange, UserError, gid};
use crate::webhooks::Subscription;

impl<'c> Obj<'c> {
    pub(crate) fn mutation_field(
        &self,
        info: &ResolveInfo<'_>,
        name: &str,
        args: &Map<String, Value>,
    ) -> Result<Val<'c>, FieldError> {
        let ctx = self.ctx;
        let now = ctx.now;
        match name {
            "bulkOperationRunQuery"
            | "bulkOperationRunMutation"
            | "bulkOperationCancel"
            | "stagedUploadsCreate" => self.bulk_mutation_field(name, args),
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
                    secret: None,
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

    pub(crate) fn collection_payload(&self, ty: &str, result: Result<u64, UserError>) -> Val<'c> {
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
    pub(crate) fn inventory(
        &self,
        info: &ResolveInfo<'_>,
        name: &str,
        args: &Map<String, Value>,
    ) -> Result<Val<'c>, FieldError> {
        let ctx = self.ctx;
        // As Shopify: a token without the scope is refused the field (a top-level error).
        if !ctx.scopes.iter().any(|s| s == "write_inventory") {
            return Err(err(format!(
                "Access denied for {name} field. Required access: `write_inventory` access scope."
            )));
        }
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
