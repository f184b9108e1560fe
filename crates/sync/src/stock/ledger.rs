//! The intent ledger: every stock write ferry makes is recorded before it is sent, so the
//! webhook it triggers is recognised as an echo and dropped, and what ferry believes each store
//! holds stays current.

use ferry_connect::shopify::ShopifyConnector;
use ferry_db::{exec, tx_exec};
use serde_json::json;

use crate::engine::Engine;
use crate::error::SyncError;
use crate::network::StoreConfig;

impl Engine {
    /// Records the intent of a write to a store's stock (before the write: its webhook is
    /// then known as an echo). An abandoned intent of the same key is pending again: its job
    /// was replayed.
    pub(crate) async fn intend(
        &self,
        key: &str,
        store: &str,
        item: &str,
        kind: &str,
        amount: i64,
    ) -> Result<(), SyncError> {
        exec!(
            self.db(),
            "INSERT INTO ferry_intents (key, store, item, kind, amount, state, created_ms)
             VALUES ($1, $2, $3, $4, $5, 'pending', $6) ON CONFLICT (key, store, item)
             DO UPDATE SET state = 'pending', created_ms = excluded.created_ms WHERE ferry_intents.state = 'abandoned'",
            key,
            store,
            item,
            kind,
            amount,
            self.now_ms()
        )?;
        Ok(())
    }

    /// Gives up the pending intents of a write the platform refused for good: they will never
    /// land, so no stock change should wait for them or be explained by them.
    pub(crate) async fn abandon(&self, key: &str, store: &str) -> Result<(), SyncError> {
        exec!(
            self.db(),
            "UPDATE ferry_intents SET state = 'abandoned' WHERE key = $1 AND store = $2 AND state = 'pending'",
            key,
            store
        )?;
        Ok(())
    }

    /// Marks an intent applied and moves what ferry believes the store holds, once.
    pub(crate) async fn applied(
        &self,
        key: &str,
        store: &str,
        item: &str,
        set_to: Option<i64>,
        delta: i64,
    ) -> Result<bool, SyncError> {
        let mut tx = self.inner.queue.begin().await?;
        let n = tx_exec!(
            tx,
            "UPDATE ferry_intents SET state = 'applied' WHERE key = $1 AND store = $2 AND item = $3 AND state = 'pending'",
            key,
            store,
            item
        )?;
        if n == 1 {
            let now = self.now_ms();
            match set_to {
                Some(q) => tx_exec!(
                    tx,
                    "INSERT INTO ferry_levels (store, item, expected, updated_ms) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (store, item) DO UPDATE SET expected = $3, updated_ms = $4",
                    store,
                    item,
                    q,
                    now
                )?,
                None => tx_exec!(
                    tx,
                    "UPDATE ferry_levels SET expected = expected + $3, updated_ms = $4 WHERE store = $1 AND item = $2",
                    store,
                    item,
                    delta,
                    now
                )?,
            };
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Sets a store's stock of an item with compare-and-set (`believed`: what it is thought
    /// to hold now), through the intent ledger, and audits it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn write_stock(
        &self,
        store: &StoreConfig,
        shop: &ShopifyConnector,
        item: &str,
        quantity: i64,
        believed: Option<i64>,
        key: &str,
        cause: &str,
    ) -> Result<(), SyncError> {
        if believed == Some(quantity) {
            self.inner
                .net
                .set_level(&store.name, item, quantity)
                .await?;
            return Ok(());
        }
        self.intend(key, &store.name, item, "set", quantity).await?;
        if let Err(e) = shop
            .set_inventory(item, &store.location_id, quantity, believed)
            .await
        {
            if !e.is_retryable() {
                self.abandon(key, &store.name).await?;
            }
            return Err(e.into());
        }
        if self
            .applied(key, &store.name, item, Some(quantity), 0)
            .await?
        {
            self.inner
                .net
                .audit(
                    &store.name,
                    item,
                    "set_stock",
                    &json!({"available": [believed, quantity], "key": key}),
                    cause,
                )
                .await?;
        }
        Ok(())
    }

    /// Whether a level a webhook reported is one a write of ferry's made (applied or still
    /// landing): an echo, known without reading the store.
    pub(crate) async fn ours(&self, store: &str, item: &str, said: i64) -> Result<bool, SyncError> {
        Ok(self.inner.net.level(store, item).await?.is_some()
            && self.explained(store, item, said).await?)
    }

    /// Whether a store's level is what ferry believes, or what a write of ferry's still
    /// landing makes it (an echo). First sight of a level: remembered, explained.
    pub(crate) async fn explained(
        &self,
        store: &str,
        item: &str,
        current: i64,
    ) -> Result<bool, SyncError> {
        let Some((expected, _)) = self.inner.net.level(store, item).await? else {
            self.inner.net.set_level(store, item, current).await?;
            return Ok(true);
        };
        if current == expected {
            return Ok(true);
        }
        let since = self.now_ms() - self.inner.opts.intent_ttl.as_millis() as i64;
        let pending = self.inner.net.pending(store, item, since).await?;
        let deltas: i64 = pending
            .iter()
            .filter(|(k, _)| k == "delta")
            .map(|(_, a)| a)
            .sum();
        Ok(!pending.is_empty()
            && (current == expected + deltas
                || pending.iter().any(|(k, a)| k == "set" && *a == current)))
    }
}
