//! Variants: a product's ordered list replaced as `productSet` does (matched by id or option
//! values), each with its inventory item and the SKU index kept in step.

use std::collections::BTreeSet;

use super::*;

impl Catalog {
    pub(crate) fn index_sku(&mut self, sku: &Option<String>, variant: u64, add: bool) {
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

    pub(crate) fn replace_variants(
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

    pub(crate) fn create_variant(&mut self, product: u64, spec: &VariantSpec, now: i64) -> u64 {
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

    pub(crate) fn remove_variant(&mut self, vid: u64) {
        if let Some(v) = self.variants.remove(&vid) {
            self.index_sku(&v.sku, vid, false);
            self.items.remove(&v.inventory_item_id);
            let locations: Vec<u64> = self.locations.keys().copied().collect();
            for l in locations {
                self.levels.remove(&(v.inventory_item_id, l));
            }
        }
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
}
