//! Where a verified webhook goes: a parent's product topics become one waiting `sync.product`
//! job per product, orders a `sync.orders` job per store, stock changes a `sync.level` check
//! after a short settle. Webhooks only trigger work; every job re-reads the current state.

use serde_json::Value;

use crate::engine::Engine;
use crate::error::SyncError;
use crate::jobs::*;
use crate::network::Role;
use crate::webhooks::WebhookJob;

pub(crate) fn gid(kind: &str, v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(format!("gid://shopify/{kind}/{n}")),
        Value::String(s) if s.starts_with("gid://") => Some(s.clone()),
        Value::String(s) if !s.is_empty() => Some(format!("gid://shopify/{kind}/{s}")),
        _ => None,
    }
}

pub(crate) fn iso_ms(v: &Value) -> Option<i64> {
    v.as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_millisecond())
}

impl Engine {
    pub(crate) async fn on_webhook(&self, w: WebhookJob) -> Result<(), SyncError> {
        // The request that delivered it, so a delivery is followed from the ingress's logs into
        // the jobs it caused.
        let span = tracing::info_span!(
            "webhook",
            request_id = w.request_id.as_deref().unwrap_or_default(),
            store = %w.store,
            topic = %w.topic,
            delivery_id = %w.delivery_id,
        );
        tracing::Instrument::instrument(self.route_webhook(w), span).await
    }

    async fn route_webhook(&self, w: WebhookJob) -> Result<(), SyncError> {
        let Some(store) = self.inner.net.get(&w.store).await? else {
            tracing::debug!(store = %w.store, "webhook from a store outside the network");
            return Ok(());
        };
        let cause = format!("webhook {} {}", w.topic, w.delivery_id);
        let job = match (store.role, w.topic.as_str()) {
            (Role::Parent, "products/create" | "products/update" | "products/delete") => {
                let id = gid("Product", &w.body["admin_graphql_api_id"])
                    .or_else(|| gid("Product", &w.body["id"]))
                    .ok_or_else(|| SyncError::Invalid("a product webhook without an id".into()))?;
                // One waiting job per product: a burst of edits is read once.
                self.sync_job(
                    &ProductJob {
                        product: id.clone(),
                        cause,
                    },
                    &store.name,
                )?
                .singleton(&format!("product:{id}"))
            }
            (_, "orders/create") => self
                .sync_job(
                    &OrdersJob {
                        store: store.name.clone(),
                        cause,
                    },
                    &store.name,
                )?
                .singleton(&format!("orders:{}", store.name)),
            (_, "inventory_levels/update") => {
                let item = gid("InventoryItem", &w.body["inventory_item_id"]).ok_or_else(|| {
                    SyncError::Invalid("a level webhook without an inventory item".into())
                })?;
                let at_ms = iso_ms(&w.body["updated_at"]).unwrap_or_else(|| self.now_ms());
                self.sync_job(
                    &LevelJob {
                        store: store.name.clone(),
                        item: item.clone(),
                        at_ms,
                        available: w.body["available"].as_i64(),
                    },
                    &store.name,
                )?
                .singleton(&format!("level:{}:{item}", store.name))
                .replace()
                .run_in(self.inner.opts.settle)
            }
            _ => return Ok(()),
        };
        self.inner.queue.enqueue(job).await?;
        Ok(())
    }
}
