//! Inventory: quantities adjusted or set (with `changeFromQuantity` compare-and-set), the level
//! webhooks, the merchant's stock counts.

use serde_json::json;

use super::*;

impl Catalog {
    pub(crate) fn check_changes(
        &self,
        name: &str,
        changes: &[QuantityChange],
        list: &str,
        absolute: bool,
    ) -> Result<(), Vec<UserError>> {
        let mut errors = Vec::new();
        let names = ["available", "on_hand"];
        if !names.contains(&name) {
            errors.push(UserError::new(
                &["input", "name"],
                "INVALID_QUANTITY_NAME",
                format!("The quantity name must be one of: {}", names.join(", ")),
            ));
        }
        for (i, c) in changes.iter().enumerate() {
            let at = i.to_string();
            let Some(level) = self.levels.get(&(c.item, c.location)) else {
                let (field, code, msg) = if !self.items.contains_key(&c.item) {
                    (
                        "inventoryItemId",
                        "INVALID_INVENTORY_ITEM",
                        "The specified inventory item could not be found.",
                    )
                } else if !self.locations.contains_key(&c.location) {
                    (
                        "locationId",
                        "INVALID_LOCATION",
                        "The specified location could not be found.",
                    )
                } else {
                    (
                        "locationId",
                        "ITEM_NOT_STOCKED_AT_LOCATION",
                        "The item is not stocked at the location.",
                    )
                };
                errors.push(UserError::new(&["input", list, &at, field], code, msg));
                continue;
            };
            let current = level.quantity(name).unwrap_or(0);
            match c.change_from {
                None => errors.push(UserError::new(
                    &["input", list, &at, "changeFromQuantity"],
                    "CHANGE_FROM_QUANTITY_REQUIRED",
                    "changeFromQuantity is required: pass the quantity you expect, or null to skip the check.",
                )),
                Some(Some(expected)) if expected != current => errors.push(UserError::new(
                    &["input", list, &at, "changeFromQuantity"],
                    "CHANGE_FROM_QUANTITY_STALE",
                    format!(
                        "The changeFromQuantity {expected} does not match the persisted quantity {current}."
                    ),
                )),
                _ => {}
            }
            let after = if absolute {
                c.amount
            } else {
                current + c.amount
            };
            if after.abs() > QUANTITY_LIMIT {
                errors.push(UserError::new(
                    &[
                        "input",
                        list,
                        &at,
                        if absolute { "quantity" } else { "delta" },
                    ],
                    "INVALID_QUANTITY_TOO_HIGH",
                    "The quantity can't be more than 1,000,000,000 or less than -1,000,000,000.",
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// `inventoryAdjustQuantities` / `inventorySetQuantities`: all changes apply, or none.
    pub fn change_quantities(
        &mut self,
        name: &str,
        reason: &str,
        reference: Option<String>,
        changes: &[QuantityChange],
        absolute: bool,
        now: i64,
    ) -> Result<AdjustmentGroup, Vec<UserError>> {
        let list = if absolute { "quantities" } else { "changes" };
        self.check_changes(name, changes, list, absolute)?;
        let mut applied = Vec::with_capacity(changes.len());
        for c in changes {
            let Some(level) = self.levels.get_mut(&(c.item, c.location)) else {
                continue;
            };
            let current = level.quantity(name).unwrap_or(0);
            let delta = if absolute {
                c.amount - current
            } else {
                c.amount
            };
            // `on_hand = available + committed`: both names move `available`.
            level.available += delta;
            level.updated_at = now;
            applied.push(Change {
                name: name.to_owned(),
                delta,
                quantity_after: current + delta,
                item: c.item,
                location: c.location,
                ledger_document_uri: c.ledger_document_uri.clone(),
            });
            self.level_event(c.item, c.location);
        }
        Ok(AdjustmentGroup {
            id: self.id(),
            created_at: now,
            reason: reason.to_owned(),
            reference_document_uri: reference,
            changes: applied,
        })
    }

    pub(crate) fn level_event(&mut self, item: u64, location: u64) {
        if let Some(l) = self.levels.get(&(item, location)) {
            let payload = json!({
                "inventory_item_id": item,
                "location_id": location,
                "available": l.available,
                "updated_at": iso(l.updated_at),
                "admin_graphql_api_id": format!("gid://shopify/InventoryLevel/{location}?inventory_item_id={item}"),
            });
            self.events.push(("inventory_levels/update", payload));
        }
    }

    /// Sets a level's `available` by hand (a stock count), firing `inventory_levels/update`.
    pub fn merchant_set_available(
        &mut self,
        item: u64,
        location: Option<u64>,
        available: i64,
        now: i64,
    ) -> Result<(), Vec<UserError>> {
        let location = location.unwrap_or_else(|| self.default_location());
        self.change_quantities(
            "available",
            "correction",
            None,
            &[QuantityChange {
                item,
                location,
                amount: available,
                change_from: Some(None),
                ledger_document_uri: None,
            }],
            true,
            now,
        )
        .map(|_| ())
    }
}
