//! Filling a store: generated catalogs (seeded, so a run can be repeated) and copies of another
//! store's products.

use std::collections::BTreeSet;

use rand::{RngExt, SeedableRng};

use super::*;

impl Catalog {
    /// Fills the catalog with `products` × `variants`, random but reproducible from `seed`.
    /// SKUs are `SKU-{n:06}-{v}` by position, so two stores seeded alike share SKUs (what a
    /// child store connected by SKU looks like). No webhooks: the store is being set up.
    pub fn seed(&mut self, seed: u64, products: usize, variants: usize, now: i64) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        const WORDS: [&str; 12] = [
            "Linen", "Wool", "Canvas", "Cotton", "Leather", "Denim", "Shirt", "Scarf", "Bag",
            "Jacket", "Cap", "Belt",
        ];
        const SIZES: [&str; 6] = ["XS", "S", "M", "L", "XL", "XXL"];
        let start = self.products.len();
        let locations: Vec<u64> = self.locations.keys().copied().collect();
        for n in start..start + products {
            let title = format!(
                "{} {} {}",
                WORDS[rng.random_range(0..6)],
                WORDS[rng.random_range(6..12)],
                n + 1
            );
            let handle = self.unique_handle(&slug(&title));
            let id = self.id();
            let count = variants.clamp(1, MAX_VARIANTS);
            let values: Vec<String> = (0..count)
                .map(|v| {
                    SIZES
                        .get(v)
                        .map(|s| (*s).to_owned())
                        .unwrap_or_else(|| format!("Size {}", v + 1))
                })
                .collect();
            let mut ids = Vec::with_capacity(count);
            for (v, value) in values.iter().enumerate() {
                let cents: u32 = rng.random_range(500..20_000);
                let spec = VariantSpec {
                    id: None,
                    options: vec![("Size".into(), value.clone())],
                    sku: Some(format!("SKU-{:06}-{}", n + 1, v + 1)),
                    price: Some(format!("{}.{:02}", cents / 100, cents % 100)),
                    compare_at_price: None,
                    quantities: locations
                        .iter()
                        .map(|l| (*l, rng.random_range(0..100)))
                        .collect(),
                };
                let vid = self.create_variant(id, &spec, now);
                ids.push(vid);
            }
            // 0, 1 or 2 images by position (not from the generator: the rest of the seed
            // stays as it was before images).
            let media = (0..n % 3)
                .map(|k| {
                    self.add_file(
                        &format!("{handle}-{}.jpg", k + 1),
                        &format!("{title}, view {}", k + 1),
                    )
                })
                .collect();
            self.add_product(Product {
                vendor: "ferry mock".into(),
                options: vec![("Size".into(), values)],
                variants: ids,
                media,
                ..Product::new(id, title, handle, now)
            });
        }
    }

    /// Products (with their variants and the stock at the first location) to copy into
    /// another store: (product, [(variant, available)]).
    pub(crate) fn export(&self) -> Vec<Exported> {
        let location = self.default_location();
        self.products
            .values()
            .map(|p| {
                let vs = p
                    .variants
                    .iter()
                    .filter_map(|v| self.variants.get(v))
                    .map(|v| {
                        let a = self
                            .levels
                            .get(&(v.inventory_item_id, location))
                            .map(|l| l.available)
                            .unwrap_or(0);
                        (v.clone(), a)
                    })
                    .collect();
                let files = p
                    .media
                    .iter()
                    .filter_map(|f| self.files.get(f))
                    .cloned()
                    .collect();
                (p.clone(), vs, files)
            })
            .collect()
    }

    /// Copies of another store's products (new ids, the same fields, SKUs and stock), each
    /// tagged `{tag_prefix}{source id}` when a prefix is given: a store that was already
    /// kept in line by a sync app, for benchmarks of steady-state reconciliation.
    pub(crate) fn import(&mut self, products: Vec<Exported>, tag_prefix: Option<&str>, now: i64) {
        let location = self.default_location();
        for (p, variants, files) in products {
            let id = self.id();
            let mut ids = Vec::with_capacity(variants.len());
            for (v, available) in &variants {
                let spec = VariantSpec {
                    id: None,
                    options: v.options.clone(),
                    sku: v.sku.clone(),
                    price: Some(v.price.clone()),
                    compare_at_price: Some(v.compare_at_price.clone()),
                    quantities: vec![(location, *available)],
                };
                ids.push(self.create_variant(id, &spec, now));
            }
            let handle = self.unique_handle(&p.handle);
            let mut tags = p.tags.clone();
            if let Some(prefix) = tag_prefix {
                tags.push(format!("{prefix}{}", p.id));
            }
            // A synced copy's images are named as ferry names the uploads it makes.
            let media = files
                .iter()
                .map(|f| match tag_prefix {
                    Some(_) => self.add_file(&format!("ferry-{}-{}", f.id, f.filename), &f.alt),
                    None => self.add_file(&f.filename, &f.alt),
                })
                .collect();
            self.add_product(Product {
                id,
                handle,
                tags,
                created_at: now,
                updated_at: now,
                variants: ids,
                collections: BTreeSet::new(),
                media,
                ..p
            });
        }
    }
}
