//! The people around a store: a merchant editing the catalog and counting stock by hand, and
//! shoppers placing orders. Their changes fire the same webhooks as API writes.

use serde_json::{Value, json};

use crate::catalog::{ProductSpec, UserError};
use crate::error::MockError;
use crate::platform::{Platform, store_ref};

fn rejected(errors: Vec<UserError>) -> MockError {
    MockError::BadRequest(
        errors
            .iter()
            .map(|e| format!("{}: {}", e.field.join("."), e.message))
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// A line of a shopper's order: a variant (by id or SKU) and a quantity.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct OrderLine {
    pub variant_id: Option<u64>,
    pub sku: Option<String>,
    pub quantity: i64,
}

impl Platform {
    /// Seeds `products` × `variants` into a store's catalog, reproducible from the platform's
    /// seed and the store's name. Stock at every location is random in 0..100.
    pub fn seed_catalog(
        &self,
        store: &str,
        products: usize,
        variants: usize,
    ) -> Result<(), MockError> {
        let seed = self.store_seed(store);
        self.with_catalog(store, |c, now| c.seed(seed, products, variants, now))
    }

    /// Fills `store` with copies of `from`'s catalog (same fields, SKUs and stock; new ids),
    /// tagged `{tag_prefix}{source id}` when given (as a sync app tags its copies).
    pub fn copy_catalog(
        &self,
        from: &str,
        store: &str,
        tag_prefix: Option<&str>,
    ) -> Result<(), MockError> {
        let products = self.with_catalog(from, |c, _| c.export())?;
        self.with_catalog(store, |c, now| c.import(products, tag_prefix, now))
    }

    /// Edits a product as a merchant would in the admin: the fields given change (list fields
    /// given are replaced), `updated_at` moves, `products/update` fires.
    pub fn merchant_edit_product(
        &self,
        store: &str,
        product: u64,
        spec: ProductSpec,
    ) -> Result<(), MockError> {
        self.with_catalog(store, |c, now| c.merchant_edit(product, spec, now))?
            .map_err(rejected)
    }

    /// Changes one variant's price or SKU in the admin.
    pub fn merchant_edit_variant(
        &self,
        store: &str,
        variant: u64,
        price: Option<String>,
        sku: Option<String>,
    ) -> Result<(), MockError> {
        self.with_catalog(store, |c, now| c.edit_variant(variant, price, sku, now))?
            .map_err(|e| rejected(vec![e]))
    }

    /// Deletes a product in the admin (`products/delete` fires).
    pub fn merchant_delete_product(&self, store: &str, product: u64) -> Result<(), MockError> {
        self.with_catalog(store, |c, now| c.delete_product(product, now))?
            .map_err(|e| rejected(vec![e]))
    }

    /// Sets `available` of an inventory item by hand (a stock count) at a location (the first
    /// one by default); `inventory_levels/update` fires.
    pub fn merchant_set_stock(
        &self,
        store: &str,
        inventory_item: u64,
        location: Option<u64>,
        available: i64,
    ) -> Result<(), MockError> {
        self.with_catalog(store, |c, now| {
            c.merchant_set_available(inventory_item, location, available, now)
        })?
        .map_err(rejected)
    }

    /// A shopper's order: stock moves from available to committed, `orders/create` and
    /// `inventory_levels/update` fire. Refused whole when a line is unknown or short.
    pub fn place_order(&self, store: &str, lines: &[OrderLine]) -> Result<u64, MockError> {
        self.with_catalog(store, |c, now| {
            let mut resolved = Vec::with_capacity(lines.len());
            for (i, l) in lines.iter().enumerate() {
                let variant = match (&l.variant_id, &l.sku) {
                    (Some(v), _) => *v,
                    (None, Some(sku)) => match c
                        .skus
                        .get(&sku.to_lowercase())
                        .map(|s| s.iter().copied().collect::<Vec<_>>())
                    {
                        Some(v) if v.len() == 1 => v[0],
                        Some(v) if v.len() > 1 => {
                            return Err(UserError::new(
                                &["lines", &i.to_string(), "sku"],
                                "AMBIGUOUS",
                                format!("SKU {sku:?} is on {} variants", v.len()),
                            ));
                        }
                        _ => {
                            return Err(UserError::new(
                                &["lines", &i.to_string(), "sku"],
                                "NOT_FOUND",
                                format!("no variant has SKU {sku:?}"),
                            ));
                        }
                    },
                    (None, None) => {
                        return Err(UserError::new(
                            &["lines", &i.to_string()],
                            "BLANK",
                            "a line needs a variant_id or a sku",
                        ));
                    }
                };
                resolved.push((variant, l.quantity));
            }
            c.place_order(&resolved, now)
        })?
        .map_err(|e| rejected(vec![e]))
    }

    /// A store's full state, for assertions: catalog with inventory per location,
    /// collections, orders, REST items, webhook subscriptions and counters.
    pub fn snapshot(&self, store: &str) -> Result<Value, MockError> {
        let items = self.items(store)?;
        let subscriptions = self.subscriptions(store);
        let webhooks = self.webhook_counters(store);
        let stores = self.lock();
        let s = store_ref(&stores, store)?;
        let mut state = s.catalog.snapshot();
        state["name"] = json!(store);
        state["items"] = json!(items);
        state["subscriptions"] = json!(subscriptions);
        state["counters"] = json!(s.counters);
        state["webhooks"] = json!(webhooks);
        Ok(state)
    }

    /// Every variant of a store as its snapshot shows it (`sku`, `inventory_item_id`,
    /// `inventory` per location…), product by product.
    pub fn variants(&self, store: &str) -> Result<Vec<Value>, MockError> {
        let snap = self.stores_catalog_snapshot(store)?;
        let products = snap["products"].as_array().cloned().unwrap_or_default();
        Ok(products
            .iter()
            .flat_map(|p| p["variants"].as_array().cloned().unwrap_or_default())
            .collect())
    }

    /// The price of the variant with `sku`, in cents (prices here have two decimals).
    pub fn price_cents(&self, store: &str, sku: &str) -> Result<i64, MockError> {
        let stores = self.lock();
        let c = &store_ref(&stores, store)?.catalog;
        let v = c
            .skus
            .get(&sku.to_lowercase())
            .and_then(|ids| ids.iter().next())
            .and_then(|id| c.variants.get(id))
            .ok_or_else(|| MockError::NotFound(format!("SKU {sku} in {store}")))?;
        let (whole, frac) = v.price.split_once('.').unwrap_or((&v.price, ""));
        let cents = format!("{whole}{frac:0<2}");
        cents
            .parse()
            .map_err(|_| MockError::NotFound(format!("a price in cents for {sku}")))
    }

    /// The first variant's inventory item and the store's first location: somewhere to move
    /// stock in a test.
    pub fn first_item(&self, store: &str) -> Result<(u64, u64), MockError> {
        let stores = self.lock();
        let c = &store_ref(&stores, store)?.catalog;
        let item = c
            .products
            .values()
            .flat_map(|p| p.variants.first())
            .find_map(|v| c.variants.get(v))
            .map(|v| v.inventory_item_id)
            .ok_or_else(|| MockError::NotFound(format!("a variant in {store}")))?;
        Ok((item, c.default_location()))
    }

    fn stores_catalog_snapshot(&self, store: &str) -> Result<Value, MockError> {
        let stores = self.lock();
        Ok(store_ref(&stores, store)?.catalog.snapshot())
    }

    /// The available quantity of an inventory item at a location (the first by default).
    pub fn available(
        &self,
        store: &str,
        inventory_item: u64,
        location: Option<u64>,
    ) -> Result<i64, MockError> {
        let stores = self.lock();
        let c = &store_ref(&stores, store)?.catalog;
        let loc = location.unwrap_or_else(|| c.default_location());
        c.levels
            .get(&(inventory_item, loc))
            .map(|l| l.available)
            .ok_or_else(|| MockError::NotFound(format!("inventory level {inventory_item}@{loc}")))
    }
}
