//! Products: `productSet` (list fields replaced, all-or-nothing validation), deletion, the
//! merchant's edits, and the payloads webhooks and snapshots carry.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::*;

pub(crate) fn slug(s: &str) -> String {
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

impl Catalog {
    pub(crate) fn touch(&mut self, product: u64, now: i64) {
        if let Some(p) = self.products.get_mut(&product) {
            self.by_update.remove(&(p.updated_at, product));
            p.updated_at = now;
            self.by_update.insert((now, product));
        }
    }

    /// Files `p` under its id, its handle and its update time.
    pub(crate) fn add_product(&mut self, p: Product) {
        self.handles.insert(p.handle.clone(), p.id);
        self.by_update.insert((p.updated_at, p.id));
        self.products.insert(p.id, p);
    }

    pub(crate) fn unique_handle(&self, base: &str) -> String {
        if !self.handles.contains_key(base) {
            return base.to_owned();
        }
        (1..)
            .map(|n| format!("{base}-{n}"))
            .find(|h| !self.handles.contains_key(h))
            .unwrap_or_else(|| base.to_owned())
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
                self.add_product(Product::new(id, title, handle, now));
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

    pub(crate) fn validate_spec(
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

    pub(crate) fn apply_scalars(&mut self, id: u64, spec: &ProductSpec) {
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

    /// Edits a product as a merchant would in the admin.
    pub fn merchant_edit(
        &mut self,
        id: u64,
        spec: ProductSpec,
        now: i64,
    ) -> Result<(), Vec<UserError>> {
        self.product_set(Some(id), None, spec, now).map(|_| ())
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
