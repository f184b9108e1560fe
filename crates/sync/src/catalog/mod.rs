//! The catalog, parent to children: a parent product read once and fanned out as one push per
//! child (a newer snapshot replaces a waiting one).

pub mod collections;
pub mod push;

use ferry_connect::shopify::model::Product;

use crate::engine::Engine;
use crate::error::SyncError;
use crate::jobs::*;
use crate::network::StoreState;

impl Engine {
    /// Remembers the parent's stock of variants ferry has not seen yet.
    pub(crate) async fn note_parent_levels(
        &self,
        parent: &str,
        p: &Product,
    ) -> Result<(), SyncError> {
        self.note_page_levels(parent, std::slice::from_ref(p)).await
    }

    /// [`Self::note_parent_levels`] for a page of products, the known levels read by one
    /// statement.
    pub(crate) async fn note_page_levels(
        &self,
        parent: &str,
        page: &[Product],
    ) -> Result<(), SyncError> {
        let items: Vec<&str> = page
            .iter()
            .flat_map(|p| &p.variants)
            .filter(|v| v.available.is_some())
            .map(|v| v.inventory_item_id.as_str())
            .collect();
        let known = self.inner.net.items_with_levels(parent, &items).await?;
        for v in page.iter().flat_map(|p| &p.variants) {
            if let Some(a) = v.available
                && !known.contains(&v.inventory_item_id)
            {
                self.inner
                    .net
                    .set_level(parent, &v.inventory_item_id, a)
                    .await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn product(&self, j: ProductJob) -> Result<(), SyncError> {
        let parent = self.inner.net.parent().await?;
        let snapshot = self.shop(&parent).await?.product(&j.product).await?;
        if let Some(p) = &snapshot {
            self.note_parent_levels(&parent.name, p).await?;
        }
        let mut jobs = Vec::new();
        for child in self.inner.net.children().await? {
            if child.state != StoreState::Connected {
                continue;
            }
            jobs.push(self.push_job(&child.name, &j.product, snapshot.clone(), &j.cause)?);
        }
        self.inner.queue.enqueue_batch(jobs).await?;
        Ok(())
    }
}
