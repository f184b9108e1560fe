//! Sales, any store to every other: an order is counted once (a unique row, whichever path sees
//! it first) and becomes one keyed delta per other store (`sale:{store}:{order}:{target}`).

use std::collections::BTreeMap;

use ferry_connect::Pages;
use ferry_connect::shopify::model::{InventoryDelta, Order};
use ferry_db::tx_exec;
use ferry_queue::NewJob;
use serde_json::json;

use crate::engine::Engine;
use crate::error::SyncError;
use crate::jobs::*;
use crate::network::StoreConfig;

/// A sale of the orders API, planned: see [`Engine::api_sale_plan`].
pub(crate) struct ApiSale {
    parent: String,
    parent_lines: Vec<(String, i64)>,
    per_store: BTreeMap<String, BTreeMap<String, i64>>,
}

impl Engine {
    /// The parent's variants of these SKUs with their current prices and the parent's
    /// currency, asked of the platform in one call (an order is checked against them).
    pub(crate) async fn parent_priced(
        &self,
        skus: &[String],
    ) -> Result<ferry_connect::shopify::model::Priced, SyncError> {
        let parent = self.inner.net.parent().await?;
        let shop = self.shop(&parent).await?;
        Ok(shop.priced_by_skus(skus).await?)
    }

    /// The parent's available stock of an item as the platform says it now.
    pub(crate) async fn parent_available(&self, item: &str) -> Result<Option<i64>, SyncError> {
        let parent = self.inner.net.parent().await?;
        let shop = self.shop(&parent).await?;
        Ok(shop.available(item, &parent.location_id).await?)
    }

    /// What a sale taken by ferry itself (the orders API) writes: the parent's (item,
    /// quantity) lines and each store's deltas. Read before the transaction that confirms the
    /// order (on SQLite a read through the pool inside it would wait for itself).
    pub(crate) async fn api_sale_plan(
        &self,
        parent: &str,
        lines: &[(String, String, i64)],
    ) -> Result<ApiSale, SyncError> {
        let mut per_store: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for (variant, item, quantity) in lines {
            *per_store
                .entry(parent.to_owned())
                .or_default()
                .entry(item.clone())
                .or_default() -= quantity;
            for c in self.inner.net.copies_of(variant).await? {
                *per_store
                    .entry(c.child)
                    .or_default()
                    .entry(c.child_item)
                    .or_default() -= quantity;
            }
        }
        Ok(ApiSale {
            parent: parent.to_owned(),
            parent_lines: lines.iter().map(|(_, i, q)| (i.clone(), *q)).collect(),
            per_store,
        })
    }

    /// Writes a sale of the orders API in the transaction that confirms it: every store of
    /// the network (the parent too) gets one delta per line, keyed by the order, with its
    /// intents; the parent's expected level moves now and its reservation is let go, so
    /// stock held for the order is never counted twice.
    pub(crate) async fn api_sale(
        &self,
        tx: &mut ferry_queue::Tx,
        order: &str,
        sale: &ApiSale,
    ) -> Result<(), SyncError> {
        let now = self.now_ms();
        for (item, quantity) in &sale.parent_lines {
            tx_exec!(
                tx,
                "UPDATE ferry_levels SET expected = expected - $3, reserved = reserved - $3, updated_ms = $4 WHERE store = $1 AND item = $2",
                &sale.parent,
                item,
                *quantity,
                now
            )?;
        }
        let parent = &sale.parent;
        let per_store = sale.per_store.clone();
        let mut jobs = Vec::new();
        for (target, changes) in per_store {
            let job = AdjustJob {
                counted: &target == parent,
                store: target.clone(),
                key: format!("order:{order}:{target}"),
                changes: changes.into_iter().collect(),
                cause: api_order_cause(order),
            };
            jobs.push(self.delta_job(tx, &job, now).await?);
        }
        tx.enqueue_batch(jobs).await?;
        Ok(())
    }

    /// A sale's delta job for one store, with its intents written in `tx`: from then on its
    /// deltas explain the store's levels (their webhooks are echoes).
    pub(crate) async fn delta_job(
        &self,
        tx: &mut ferry_queue::Tx,
        job: &AdjustJob,
        now: i64,
    ) -> Result<NewJob, SyncError> {
        for (item, delta) in &job.changes {
            tx_exec!(
                tx,
                "INSERT INTO ferry_intents (key, store, item, kind, amount, state, created_ms)
                 VALUES ($1, $2, $3, 'delta', $4, 'pending', $5) ON CONFLICT (key, store, item) DO NOTHING",
                &job.key,
                &job.store,
                item,
                *delta,
                now
            )?;
        }
        Ok(self.sync_job(job, &job.store)?.priority(1))
    }

    pub(crate) async fn orders(&self, j: OrdersJob) -> Result<(), SyncError> {
        let store = self.inner.net.store(&j.store).await?;
        self.catch_up_orders(&store).await.map(|_| ())
    }

    /// Reads a store's orders after the last one counted and counts each new one once.
    pub(crate) async fn catch_up_orders(&self, store: &StoreConfig) -> Result<usize, SyncError> {
        let shop = self.shop(store).await?;
        let mark = self.inner.net.order_mark(&store.name).await?;
        let mut counted = 0;
        let shop = &shop;
        let mut pages = Pages::new(|c| async move { shop.orders_after(mark, c.as_deref()).await });
        while let Some(orders) = pages.next().await? {
            for o in &orders {
                if self.count_sale(store, o).await? {
                    counted += 1;
                }
            }
        }
        Ok(counted)
    }

    /// One order: the first path to see it inserts its row and, in the same transaction,
    /// lowers what ferry believes the selling store holds and enqueues one delta per other
    /// store, each with an idempotency key derived from the order.
    pub(crate) async fn count_sale(
        &self,
        store: &StoreConfig,
        o: &Order,
    ) -> Result<bool, SyncError> {
        let parent = self.inner.net.parent().await?;
        let mut own: BTreeMap<String, i64> = BTreeMap::new();
        let mut others: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for line in &o.lines {
            let Some(variant) = &line.variant_id else {
                continue;
            };
            let parent_variant = if store.name == parent.name {
                Some(variant.clone())
            } else {
                self.inner
                    .net
                    .by_child_variant(&store.name, variant)
                    .await?
                    .map(|l| l.parent_variant)
            };
            let Some(pv) = parent_variant else {
                tracing::debug!(store = %store.name, variant = %variant, "sold a variant outside the network");
                continue;
            };
            let copies = self.inner.net.copies_of(&pv).await?;
            let Some(first) = copies.first() else {
                continue;
            };
            let mut holders = vec![(parent.name.clone(), first.parent_item.clone())];
            holders.extend(
                copies
                    .iter()
                    .map(|c| (c.child.clone(), c.child_item.clone())),
            );
            for (s, item) in holders {
                if s == store.name {
                    *own.entry(item).or_default() -= line.quantity;
                } else {
                    *others.entry(s).or_default().entry(item).or_default() -= line.quantity;
                }
            }
        }
        let now = self.now_ms();
        let mut tx = self.inner.queue.begin().await?;
        let new = tx_exec!(
            tx,
            "INSERT INTO ferry_sales (store, order_id, created_ms) VALUES ($1, $2, $3) ON CONFLICT (store, order_id) DO NOTHING",
            &store.name,
            &o.id,
            now
        )?;
        let number = o.number as i64;
        tx_exec!(
            tx,
            "INSERT INTO ferry_order_marks (store, number) VALUES ($1, $2)
             ON CONFLICT (store) DO UPDATE SET number = CASE WHEN excluded.number > ferry_order_marks.number THEN excluded.number ELSE ferry_order_marks.number END",
            &store.name,
            number
        )?;
        if new == 0 {
            tx.commit().await?;
            return Ok(false);
        }
        for (item, delta) in &own {
            tx_exec!(
                tx,
                "UPDATE ferry_levels SET expected = expected + $3, updated_ms = $4 WHERE store = $1 AND item = $2",
                &store.name,
                item,
                *delta,
                now
            )?;
        }
        let mut jobs = Vec::new();
        for (target, changes) in others {
            let job = AdjustJob {
                store: target.clone(),
                key: format!("sale:{}:{}:{target}", store.name, o.number),
                changes: changes.into_iter().collect(),
                cause: format!("order {} in {}", o.id, store.name),
                counted: false,
            };
            jobs.push(self.delta_job(&mut tx, &job, now).await?);
        }
        tx.enqueue_batch(jobs).await?;
        tx.commit().await?;
        metrics::counter!("ferry_sync_sales_total").increment(1);
        Ok(true)
    }

    pub(crate) async fn adjust(&self, j: AdjustJob) -> Result<(), SyncError> {
        let store = self.inner.net.store(&j.store).await?;
        let shop = self.shop(&store).await?;
        for (item, delta) in &j.changes {
            self.intend(&j.key, &store.name, item, "delta", *delta)
                .await?;
        }
        let changes: Vec<InventoryDelta> = j
            .changes
            .iter()
            .map(|(item, delta)| InventoryDelta {
                inventory_item_id: item.clone(),
                location_id: store.location_id.clone(),
                delta: *delta,
                change_from: None,
            })
            .collect();
        // The key makes a retry (or a redelivered order) apply once on the platform.
        if let Err(e) = shop.adjust_inventory(&j.key, "correction", &changes).await {
            if !e.is_retryable() {
                self.abandon(&j.key, &store.name).await?;
            }
            return Err(e.into());
        }
        for (item, delta) in &j.changes {
            let moves = if j.counted { 0 } else { *delta };
            if self.applied(&j.key, &store.name, item, None, moves).await? {
                self.inner
                    .net
                    .audit(
                        &store.name,
                        item,
                        "adjust_stock",
                        &json!({"delta": delta, "key": j.key}),
                        &j.cause,
                    )
                    .await?;
            }
        }
        Ok(())
    }
}

/// The audit log's cause of the stock writes an order of the orders API made.
pub fn api_order_cause(order: &str) -> String {
    format!("order {order} (orders API)")
}
