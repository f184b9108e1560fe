//! Collections and their membership.

use std::collections::BTreeSet;

use super::*;

impl Catalog {
    /// Replaces a product's collections with `cols`.
    pub fn set_collections(&mut self, id: u64, cols: &[u64], now: i64) {
        let want: BTreeSet<u64> = cols.iter().copied().collect();
        let had = self
            .products
            .get(&id)
            .map(|p| p.collections.clone())
            .unwrap_or_default();
        for c in had.difference(&want) {
            if let Some(col) = self.collections.get_mut(c) {
                col.products.remove(&id);
                col.updated_at = now;
            }
        }
        for c in want.difference(&had) {
            if let Some(col) = self.collections.get_mut(c) {
                col.products.insert(id);
                col.updated_at = now;
            }
        }
        if let Some(p) = self.products.get_mut(&id) {
            p.collections = want;
        }
    }

    pub fn create_collection(
        &mut self,
        title: &str,
        handle: Option<&str>,
        products: &[u64],
        now: i64,
    ) -> Result<u64, UserError> {
        if title.trim().is_empty() {
            return Err(UserError::new(
                &["input", "title"],
                "BLANK",
                "Title can't be blank",
            ));
        }
        if let Some(p) = products.iter().find(|p| !self.products.contains_key(p)) {
            return Err(UserError::new(
                &["input", "products"],
                "PRODUCT_DOES_NOT_EXIST",
                format!("Product {} does not exist", gid("Product", *p)),
            ));
        }
        let handle = handle.map(str::to_owned).unwrap_or_else(|| slug(title));
        if self.collections.values().any(|c| c.handle == handle) {
            return Err(UserError::new(
                &["input", "handle"],
                "TAKEN",
                format!("Handle '{handle}' already in use"),
            ));
        }
        let id = self.id();
        self.collections.insert(
            id,
            Collection {
                id,
                title: title.to_owned(),
                handle,
                products: BTreeSet::new(),
                updated_at: now,
            },
        );
        self.change_membership(id, products, true, now)?;
        Ok(id)
    }

    /// Adds products to a collection, or removes them.
    pub fn change_membership(
        &mut self,
        collection: u64,
        products: &[u64],
        add: bool,
        now: i64,
    ) -> Result<(), UserError> {
        if !self.collections.contains_key(&collection) {
            return Err(UserError::new(
                &["id"],
                "COLLECTION_DOES_NOT_EXIST",
                "Collection does not exist",
            ));
        }
        if let Some(p) = products.iter().find(|p| !self.products.contains_key(p)) {
            return Err(UserError::new(
                &["productIds"],
                "PRODUCT_DOES_NOT_EXIST",
                format!("Product {} does not exist", gid("Product", *p)),
            ));
        }
        for p in products {
            let mut cols = self
                .products
                .get(p)
                .map(|x| x.collections.clone())
                .unwrap_or_default();
            if add {
                cols.insert(collection);
            } else {
                cols.remove(&collection);
            }
            let cols: Vec<u64> = cols.into_iter().collect();
            self.set_collections(*p, &cols, now);
            self.touch(*p, now);
        }
        Ok(())
    }
}
