//! Stock counts: a level change nothing explains (no write of ferry's, no sale) is a count; the
//! newest wins by the store's timestamp and reaches the other stores as compare-and-set sets.

use std::time::Duration;

use ferry_db::tx_exec;

use crate::engine::Engine;
use crate::error::SyncError;
use crate::jobs::*;

impl Engine {
    pub(crate) async fn level(&self, j: LevelJob) -> Result<(), SyncError> {
        let store = self.inner.net.store(&j.store).await?;
        let copies = self.inner.net.sku_copies(&store.name, &j.item).await?;
        if copies.is_empty() {
            return Ok(());
        }
        if let Some(said) = j.available
            && self.ours(&store.name, &j.item, said).await?
        {
            metrics::counter!("ferry_sync_echoes_total").increment(1);
            return Ok(());
        }
        let shop = self.shop(&store).await?;
        let Some(current) = shop.available(&j.item, &store.location_id).await? else {
            return Ok(());
        };
        if self.explained(&store.name, &j.item, current).await? {
            metrics::counter!("ferry_sync_echoes_total").increment(1);
            return Ok(());
        }
        // Not ours: an order may explain it (its webhook late or lost), so count the store's
        // orders (every one placed before the reading), then look again.
        self.catch_up_orders(&store).await?;
        if self.explained(&store.name, &j.item, current).await? {
            return Ok(());
        }
        let now = self.now_ms();
        let since = now - self.inner.opts.intent_ttl.as_millis() as i64;
        if !self
            .inner
            .net
            .pending(&store.name, &j.item, since)
            .await?
            .is_empty()
        {
            // One of ours is still landing: look again once it has.
            return Err(SyncError::Wait(Duration::from_millis(300)));
        }
        let horizon = now - self.inner.opts.intent_horizon.as_millis() as i64;
        if !self
            .inner
            .net
            .pending(&store.name, &j.item, horizon)
            .await?
            .is_empty()
        {
            // An older one waits for its job's next try (it may have landed already).
            return Err(SyncError::Wait(Duration::from_secs(5)));
        }
        // Only a reading that still holds is a count: the catch-up may have counted a sale
        // newer than the reading (or a write of ours landed since), which the next look
        // explains.
        if shop.available(&j.item, &store.location_id).await? != Some(current) {
            return Err(SyncError::Wait(Duration::from_millis(300)));
        }
        // A change no write of ours and no order explains: a stock count. The newest count
        // wins; the others get it by compare-and-set.
        let (parent_store, parent_item) = copies[0].clone();
        let parent_level = self.inner.net.level(&parent_store, &parent_item).await?;
        let last_set = parent_level.map(|(_, l)| l).unwrap_or(0);
        if j.at_ms < last_set {
            let winner = parent_level.map(|(e, _)| e).unwrap_or(current);
            tracing::info!(store = %store.name, item = %j.item, "an older stock count lost to a newer one");
            let job = SetJob {
                store: store.name.clone(),
                item: j.item.clone(),
                quantity: winner,
                key: format!("lww:{}:{}:{}", store.name, j.item, j.at_ms),
                cause: format!("newer stock count wins over {}", store.name),
            };
            self.inner
                .queue
                .enqueue(self.sync_job(&job, &store.name)?)
                .await?;
            return Ok(());
        }
        let now = self.now_ms();
        let key = format!("count:{}:{}:{}", store.name, j.item, j.at_ms);
        tracing::debug!(store = %store.name, item = %j.item, "level: a stock count");
        let mut tx = self.inner.queue.begin().await?;
        tx_exec!(
            tx,
            "UPDATE ferry_levels SET expected = $3, updated_ms = $4 WHERE store = $1 AND item = $2",
            &store.name,
            &j.item,
            current,
            now
        )?;
        let marked = tx_exec!(
            tx,
            "UPDATE ferry_levels SET last_set_ms = $3 WHERE store = $1 AND item = $2",
            &parent_store,
            &parent_item,
            j.at_ms
        )?;
        if marked == 0 {
            tx_exec!(
                tx,
                "INSERT INTO ferry_levels (store, item, expected, last_set_ms, updated_ms) VALUES ($1, $2, $3, $4, $5)",
                &parent_store,
                &parent_item,
                current,
                j.at_ms,
                now
            )?;
        }
        let mut jobs = Vec::new();
        for (s, item) in copies.iter().filter(|(s, _)| *s != store.name) {
            let job = SetJob {
                store: s.clone(),
                item: item.clone(),
                quantity: current,
                key: key.clone(),
                cause: format!("stock count in {}", store.name),
            };
            jobs.push(
                self.sync_job(&job, s)?
                    .singleton(&format!("set:{s}:{item}"))
                    .replace(),
            );
        }
        tx.enqueue_batch(jobs).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn set(&self, j: SetJob) -> Result<(), SyncError> {
        let store = self.inner.net.store(&j.store).await?;
        // Its sales first, so what ferry believes it holds is current for the compare.
        self.catch_up_orders(&store).await?;
        let shop = self.shop(&store).await?;
        let believed = self
            .inner
            .net
            .level(&store.name, &j.item)
            .await?
            .map(|(e, _)| e);
        self.write_stock(
            &store, &shop, &j.item, j.quantity, believed, &j.key, &j.cause,
        )
        .await
    }
}
