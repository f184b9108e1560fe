//! The push saga: the child's copy made what the rules say (upsert, collections, images, the
//! stock of new variants); a later step failing for good undoes the earlier ones. A create
//! records its intent first and tags the copy, so a retry finds it instead of making a second.

use ferry_connect::shopify::ShopifyConnector;
use serde_json::{Value, json};

use crate::engine::Engine;
use crate::error::SyncError;
use crate::jobs::*;
use crate::network::LinkState;
use crate::network::{StoreConfig, VariantLink};
use crate::plan::{
    changes, collection_handles, collections_match, plan, restore, satisfied, source_tag, twin,
};

/// How long a push holds its product's lock: a holder that died lets it go after this. A
/// push takes a few requests; one throttled for longer can overlap the next push again.
const PUSH_LOCK_MS: i64 = 60_000;

/// How long a push waits before looking at a held lock again.
const PUSH_LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

impl Engine {
    /// One push at a time per (child, product): the queue can start a newer push while an
    /// older one runs, and two writing the copy at once could leave the older snapshot last.
    /// A push that finds the lock held waits (without spending an attempt) and then reads the
    /// link the holder left, so the older snapshot is skipped.
    pub(crate) async fn push(&self, j: PushJob) -> Result<(), SyncError> {
        let net = &self.inner.net;
        let holder = uuid::Uuid::now_v7().to_string();
        let until = self.now_ms() + PUSH_LOCK_MS;
        if !net.lock_push(&j.child, &j.product, &holder, until).await? {
            return Err(SyncError::Wait(PUSH_LOCK_WAIT));
        }
        let (child, product) = (j.child.clone(), j.product.clone());
        let pushed = self.push_locked(j).await;
        // Released even when the push failed; if this fails too, the lock lapses.
        let released = net.unlock_push(&child, &product, &holder).await;
        pushed?;
        released
    }

    async fn push_locked(&self, j: PushJob) -> Result<(), SyncError> {
        let net = &self.inner.net;
        let child = net.store(&j.child).await?;
        let shop = self.shop(&child).await?;
        let link = net.link(&child.name, &j.product).await?;
        let Some(parent_p) = j.snapshot else {
            return self.archive_copy(&child, &shop, link, &j.cause).await;
        };
        if let Some(l) = &link
            && l.state == LinkState::Linked
            && parent_p.updated_at < l.parent_updated
        {
            tracing::debug!(child = %child.name, product = %j.product, "older than what was pushed");
            return Ok(());
        }
        // The copy as it is now: by the link, else (an earlier create whose answer was lost)
        // by ferry's tag on it.
        let mut existing = None;
        if let Some(id) = link.as_ref().and_then(|l| l.child_product.as_deref()) {
            existing = shop.product(id).await?;
        }
        if existing.is_none() && link.is_some() {
            existing = shop
                .products_tagged(&source_tag(&j.product))
                .await?
                .into_iter()
                .next();
        }
        let input = plan(&parent_p, &child.rules, existing.as_ref());
        let created = existing.is_none();
        let after = match &existing {
            Some(e) if satisfied(&input, e) => e.clone(),
            Some(e) => shop.upsert(Some(&e.id), &input).await?,
            None => {
                // The intent first: a retry after a lost answer looks for the copy by tag.
                net.set_link(&child.name, &j.product, None, LinkState::Creating, 0)
                    .await?;
                shop.upsert(None, &input).await?
            }
        };
        let link_copy = |state, parent_updated| {
            net.set_link(
                &child.name,
                &j.product,
                Some(&after.id),
                state,
                parent_updated,
            )
        };
        let wrote = created || existing.as_ref().is_some_and(|e| !satisfied(&input, e));
        if wrote {
            net.audit(
                &child.name,
                &after.id,
                if created { "create" } else { "update" },
                &Value::Object(changes(existing.as_ref(), &input)),
                &j.cause,
            )
            .await?;
        }
        if created {
            link_copy(LinkState::Creating, 0).await?;
        }
        let old = self
            .inner
            .net
            .variant_links(&child.name, &j.product)
            .await?;
        let mut links = Vec::new();
        let mut fresh = Vec::new();
        for pv in &parent_p.variants {
            if let Some(cv) = twin(pv, &after) {
                if !old.iter().any(|l| l.child_variant == cv.id) {
                    fresh.push((pv.clone(), cv.clone()));
                }
                links.push(VariantLink {
                    child: child.name.clone(),
                    parent_variant: pv.id.clone(),
                    parent_item: pv.inventory_item_id.clone(),
                    child_variant: cv.id.clone(),
                    child_item: cv.inventory_item_id.clone(),
                    sku: pv.sku.clone(),
                    parent_product: j.product.clone(),
                });
            }
        }
        let parent_name = net.parent().await?.name;
        let later_steps = async {
            // Step 2: collection membership follows the parent (by handle).
            if !collections_match(&parent_p, &child.rules, &after) {
                let mut ids = Vec::with_capacity(parent_p.collections.len());
                for pc in &parent_p.collections {
                    ids.push(self.child_collection(&child, &shop, pc).await?);
                }
                shop.set_collections(&after.id, &ids).await?;
                net.audit(
                        &child.name,
                        &after.id,
                        "collections",
                        &json!({"collections": [collection_handles(&after), collection_handles(&parent_p)]}),
                        &j.cause,
                    )
                    .await?;
            }
            // Step 3: variants new to the link get the network's stock.
            for (pv, cv) in &fresh {
                let want = match self
                    .inner
                    .net
                    .level(&parent_name, &pv.inventory_item_id)
                    .await?
                {
                    Some((e, _)) => e,
                    None => pv.available.unwrap_or(0),
                };
                let key = format!("copy:{}:{}", child.name, cv.inventory_item_id);
                self.write_stock(
                    &child,
                    &shop,
                    &cv.inventory_item_id,
                    want,
                    cv.available,
                    &key,
                    &j.cause,
                )
                .await?;
            }
            Ok::<(), SyncError>(())
        };
        if let Err(e) = later_steps.await {
            if !e.is_permanent() {
                return Err(e);
            }
            // For good: undo step 1, so the child is left as it was.
            let undo = match &existing {
                None => shop.archive(&after.id).await.map(|_| "archive"),
                Some(before) => shop
                    .upsert(Some(&before.id), &restore(before))
                    .await
                    .map(|_| "restore"),
            };
            let undone = undo.is_ok();
            net.audit(
                &child.name,
                &after.id,
                "compensate",
                &json!({"undo": undo.unwrap_or("failed"), "error": e.to_string()}),
                &j.cause,
            )
            .await?;
            net.set_link(
                &child.name,
                &j.product,
                if created { None } else { Some(&after.id) },
                if created {
                    LinkState::Failed
                } else {
                    LinkState::Linked
                },
                0,
            )
            .await?;
            return Err(if undone {
                SyncError::Compensated(e.to_string())
            } else {
                e
            });
        }
        net.replace_variant_links(&child.name, &j.product, &links)
            .await?;
        link_copy(LinkState::Linked, parent_p.updated_at).await?;
        Ok(())
    }

    pub(crate) async fn archive_copy(
        &self,
        child: &StoreConfig,
        shop: &ShopifyConnector,
        link: Option<crate::network::Link>,
        cause: &str,
    ) -> Result<(), SyncError> {
        let Some(l) = link else { return Ok(()) };
        let Some(copy) = l.child_product.as_deref() else {
            return Ok(());
        };
        if l.state == LinkState::Archived {
            return Ok(());
        }
        // Archived, not deleted: reversible, and the child's order history keeps its product.
        shop.archive(copy).await?;
        self.inner
            .net
            .audit(
                &child.name,
                copy,
                "archive",
                &json!({"status": [Value::Null, "ARCHIVED"]}),
                cause,
            )
            .await?;
        self.inner
            .net
            .set_link(
                &child.name,
                &l.parent_product,
                Some(copy),
                LinkState::Archived,
                l.parent_updated,
            )
            .await
    }
}
