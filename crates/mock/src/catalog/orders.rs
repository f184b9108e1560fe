//! Orders: a shopper's order takes stock (available to committed), refused whole when short.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;

pub(crate) fn order_payload(o: &Order) -> Value {
    let lines: Vec<Value> = o
        .lines
        .iter()
        .map(|l| {
            json!({
                "id": l.id,
                "variant_id": l.variant_id,
                "product_id": l.product_id,
                "sku": l.sku,
                "title": l.title,
                "quantity": l.quantity,
                "price": l.price,
            })
        })
        .collect();
    json!({
        "id": o.id,
        "admin_graphql_api_id": gid("Order", o.id),
        "name": o.name,
        "created_at": iso(o.created_at),
        "location_id": o.location_id,
        "line_items": lines,
    })
}

impl Catalog {
    /// A shopper's order: each line takes `quantity` from `available` (into `committed`) at
    /// the first location; refused whole if any line is short or unknown.
    pub fn place_order(&mut self, lines: &[(u64, i64)], now: i64) -> Result<u64, UserError> {
        let location = self.default_location();
        if lines.is_empty() {
            return Err(UserError::new(&["lines"], "BLANK", "An order needs lines"));
        }
        let mut need: BTreeMap<u64, i64> = BTreeMap::new();
        for (i, (vid, qty)) in lines.iter().enumerate() {
            let Some(v) = self.variants.get(vid) else {
                return Err(UserError::new(
                    &["lines", &i.to_string(), "variant_id"],
                    "NOT_FOUND",
                    format!("variant {vid} not found"),
                ));
            };
            if *qty <= 0 {
                return Err(UserError::new(
                    &["lines", &i.to_string(), "quantity"],
                    "INVALID",
                    "quantity must be positive",
                ));
            }
            *need.entry(v.inventory_item_id).or_default() += qty;
        }
        for (item, qty) in &need {
            let available = self
                .levels
                .get(&(*item, location))
                .map(|l| l.available)
                .unwrap_or(0);
            if available < *qty {
                return Err(UserError::new(
                    &["lines"],
                    "NOT_ENOUGH_STOCK",
                    format!("only {available} available of inventory item {item}"),
                ));
            }
        }
        let id = self.id();
        let mut order_lines = Vec::with_capacity(lines.len());
        for (vid, qty) in lines {
            let Some(v) = self.variants.get(vid).cloned() else {
                continue;
            };
            let title = self
                .products
                .get(&v.product_id)
                .map(|p| p.title.clone())
                .unwrap_or_default();
            order_lines.push(LineItem {
                id: self.id(),
                variant_id: v.id,
                product_id: v.product_id,
                sku: v.sku.clone(),
                title,
                quantity: *qty,
                price: v.price.clone(),
            });
        }
        for (item, qty) in &need {
            if let Some(l) = self.levels.get_mut(&(*item, location)) {
                l.available -= qty;
                l.committed += qty;
                l.updated_at = now;
            }
        }
        let name = format!("#{}", 1001 + self.orders.len());
        let order = Order {
            id,
            name,
            created_at: now,
            location_id: location,
            lines: order_lines,
        };
        self.events.push(("orders/create", order_payload(&order)));
        for item in need.keys() {
            self.level_event(*item, location);
        }
        self.orders.insert(id, order);
        Ok(id)
    }
}
