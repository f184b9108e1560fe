//! Connecting a store: webhooks subscribed, the location recorded; for a child, its catalog
//! streamed into a SKU index and linked to the parent's by SKU (ambiguities refused and listed,
//! never guessed), what it lacks copied, its stock aligned to the parent's.

use std::time::Duration;

use ferry_connect::Pages;
use ferry_connect::shopify::ShopifyConnector;
use ferry_db::tx_exec;

use crate::bulk::{CatalogReader, PhaseSink, RunProgress};
use ferry_connect::shopify::model::Product;
use ferry_db::{exec, rows};
use serde_json::json;

use crate::engine::Engine;
use crate::error::SyncError;
use crate::jobs::*;
use crate::network::{LinkState, StoreState};
use crate::network::{Role, StoreConfig};

impl Engine {
    pub(crate) async fn connect(&self, j: ConnectJob) -> Result<(), SyncError> {
        let store = self.inner.net.store(&j.store).await?;
        if store.role == Role::Child {
            let parent = self.inner.net.parent().await?;
            if parent.state != StoreState::Connected {
                return Err(SyncError::Wait(Duration::from_secs(1)));
            }
        }
        let shop = self.shop(&store).await?;
        let location = shop
            .locations()
            .await?
            .into_iter()
            .next()
            .map(|(id, _)| id)
            .ok_or_else(|| SyncError::Invalid(format!("{} has no location", store.name)))?;
        // The token is in hand now: it must hold every scope ferry needs, or a later write
        // would fail halfway. The store says what it holds, whatever the kind of token.
        let granted = shop.granted_scopes().await?;
        let missing = crate::credentials::missing_scopes(&granted);
        if !missing.is_empty() {
            return Err(SyncError::Invalid(format!(
                "{} did not grant the scopes ferry needs: {} (grant them in the app's configuration, then connect again)",
                store.name,
                missing.join(", ")
            )));
        }
        let topics: &[&str] = match store.role {
            Role::Parent => &[
                "PRODUCTS_CREATE",
                "PRODUCTS_UPDATE",
                "PRODUCTS_DELETE",
                "ORDERS_CREATE",
                "INVENTORY_LEVELS_UPDATE",
            ],
            Role::Child => &["ORDERS_CREATE", "INVENTORY_LEVELS_UPDATE"],
        };
        let uri = format!(
            "{}/webhooks/shopify/{}",
            self.inner.opts.public_url.trim_end_matches('/'),
            store.name
        );
        if store.state != StoreState::Connected {
            for t in topics {
                shop.subscribe(t, &uri).await?;
            }
        }
        // Orders placed before the store joined are history, not sales to move.
        self.skip_old_orders(&store, &shop).await?;
        let mut store = store;
        store.location_id = location.clone();
        self.inner.net.set_connected(&store.name, &location).await?;
        self.shops().remove(&store.name);
        match store.role {
            Role::Child => self.link_catalog(&store).await?,
            Role::Parent => {
                let shop = self.shop(&store).await?;
                let bulk = self.wants_bulk(&shop).await?;
                let mut quiet = |_: &RunProgress| {};
                let mut sink = PhaseSink::new(None, &mut quiet);
                let mut notes = Vec::new();
                let mut reader = self
                    .whole_catalog(&store, &shop, bulk, None, &mut sink, &mut notes)
                    .await?;
                self.index_skus(&store, &mut reader).await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn skip_old_orders(
        &self,
        store: &StoreConfig,
        shop: &ShopifyConnector,
    ) -> Result<(), SyncError> {
        let mark = self.inner.net.order_mark(&store.name).await?;
        let mut newest = mark;
        let mut pages = Pages::new(|c| async move { shop.orders_after(mark, c.as_deref()).await });
        while let Some(orders) = pages.next().await? {
            newest = orders.iter().map(|o| o.number).fold(newest, u64::max);
        }
        if newest > mark {
            exec!(
                self.db(),
                "INSERT INTO ferry_order_marks (store, number) VALUES ($1, $2)
                 ON CONFLICT (store) DO UPDATE SET number = $2",
                &store.name,
                newest as i64
            )?;
        }
        Ok(())
    }

    /// Streams a store's catalog into the SKU index, a page at a time.
    pub(crate) async fn index_skus(
        &self,
        store: &StoreConfig,
        reader: &mut CatalogReader<'_>,
    ) -> Result<(), SyncError> {
        exec!(
            self.db(),
            "DELETE FROM ferry_skus WHERE store = $1",
            &store.name
        )?;
        while let Some(page) = reader.next_page().await? {
            let mut tx = self.db().begin().await?;
            for p in &page {
                remember_skus(&mut tx, &store.name, p).await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    pub(crate) async fn remember_skus(&self, store: &str, p: &Product) -> Result<(), SyncError> {
        let mut tx = self.db().begin().await?;
        remember_skus(&mut tx, store, p).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A product's SKUs into the index (a page's in one transaction).
async fn remember_skus(tx: &mut ferry_db::DbTx, store: &str, p: &Product) -> Result<(), SyncError> {
    {
        for v in &p.variants {
            let Some(sku) = v.sku.as_deref().filter(|s| !s.trim().is_empty()) else {
                continue;
            };
            tx_exec!(
                tx,
                "INSERT INTO ferry_skus (store, sku, variant, item, product, available) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (store, sku, variant) DO NOTHING",
                store,
                sku.to_lowercase(),
                &v.id,
                &v.inventory_item_id,
                &p.id,
                v.available
            )?;
        }
    }
    Ok(())
}

impl Engine {
    pub(crate) async fn problem(
        &self,
        child: &str,
        product: &str,
        sku: &str,
        reason: &str,
    ) -> Result<(), SyncError> {
        exec!(
            self.db(),
            "INSERT INTO ferry_link_problems (child, parent_product, sku, reason, at_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (child, parent_product, sku) DO UPDATE SET reason = $4, at_ms = $5",
            child,
            product,
            sku,
            reason,
            self.now_ms()
        )?;
        Ok(())
    }

    /// Links a child's existing products to the parent's by SKU and copies over the rest.
    /// Ambiguous matches (a blank SKU, a SKU on several variants, variants split over several
    /// products) are refused and listed in `ferry_link_problems`, never guessed.
    pub(crate) async fn link_catalog(&self, child: &StoreConfig) -> Result<(), SyncError> {
        let started_ms = self.now_ms();
        let run = uuid::Uuid::now_v7().to_string();
        // Connecting is a full pass, recorded as a run from its start so its phase shows.
        exec!(
            self.db(),
            "INSERT INTO ferry_sync_runs (id, child, full_pass, state, started_ms, cursor_ms) VALUES ($1, $2, 1, $3, $4, $4)",
            &run,
            &child.name,
            crate::reconcile::RunState::Running,
            started_ms
        )?;
        let mut quiet = |_: &RunProgress| {};
        let mut sink = PhaseSink::new(Some(run.clone()), &mut quiet);
        let outcome = self.link_pass(child, &mut sink).await;
        let state = if outcome.is_ok() {
            crate::reconcile::RunState::Done
        } else {
            crate::reconcile::RunState::Failed
        };
        let (checked, copied, mode) = outcome.as_ref().cloned().unwrap_or_default();
        exec!(
            self.db(),
            "UPDATE ferry_sync_runs SET state = $2, finished_ms = $3, checked = $4, created = $5, mode = $6, error = $7 WHERE id = $1",
            &run,
            state,
            self.now_ms(),
            checked,
            copied,
            &mode,
            outcome.as_ref().err().map(SyncError::brief)
        )?;
        outcome.map(|_| ())
    }

    /// Linking itself: (products checked, copies to make, how the catalogs were read).
    async fn link_pass(
        &self,
        child: &StoreConfig,
        sink: &mut PhaseSink<'_>,
    ) -> Result<(i64, i64, String), SyncError> {
        let parent = self.inner.net.parent().await?;
        let pshop = self.shop(&parent).await?;
        let cshop = self.shop(child).await?;
        let mut notes = Vec::new();
        let parent_bulk = self.wants_bulk(&pshop).await?;
        let child_bulk = self.wants_bulk(&cshop).await?;
        // The parent's export runs on the platform while the child's is read.
        let started = if parent_bulk {
            Some(self.start_export(&parent, &pshop).await?)
        } else {
            None
        };
        // The parent's index is rebuilt by the parent's own connect; children connecting at
        // once share it (and add what the parent gained since, below).
        let mut copies = self
            .whole_catalog(child, &cshop, child_bulk, None, sink, &mut notes)
            .await?;
        self.index_skus(child, &mut copies).await?;
        let child_read_bulk = copies.is_bulk();
        drop(copies);
        exec!(
            self.db(),
            "DELETE FROM ferry_link_problems WHERE child = $1",
            &child.name
        )?;
        let mut parents = self
            .whole_catalog(&parent, &pshop, parent_bulk, started, sink, &mut notes)
            .await?;
        let mode = match (parents.is_bulk() || child_read_bulk, notes.is_empty()) {
            (_, false) => notes.join("; "),
            (true, true) => "bulk".into(),
            (false, true) => "paged".into(),
        };
        self.set_phase(sink, "linking by SKU".into()).await?;
        let cause = format!("connect {}", child.name);
        let (mut linked, mut missing, mut refused) = (0u64, 0u64, 0u64);
        while let Some(page) = parents.next_page().await? {
            let mut jobs = Vec::new();
            for p in &page {
                self.remember_skus(&parent.name, p).await?;
            }
            for p in page {
                self.note_parent_levels(&parent.name, &p).await?;
                if self
                    .inner
                    .net
                    .link(&child.name, &p.id)
                    .await?
                    .is_some_and(|l| l.state == LinkState::Linked)
                {
                    linked += 1;
                    continue;
                }
                let mut matches: Vec<(String, String, String, Option<i64>)> = Vec::new();
                let mut problem = None;
                for v in &p.variants {
                    let Some(sku) = v.sku.as_deref().filter(|s| !s.trim().is_empty()) else {
                        problem = Some((String::new(), "blank_sku"));
                        break;
                    };
                    let sku = sku.to_lowercase();
                    let in_parent: Vec<(String,)> = rows!(
                        self.db(),
                        (String,),
                        "SELECT variant FROM ferry_skus WHERE store = $1 AND sku = $2",
                        &parent.name,
                        &sku
                    )?;
                    if in_parent.len() > 1 {
                        problem = Some((sku, "duplicate_sku_in_parent"));
                        break;
                    }
                    let found: Vec<(String, String, String, Option<i64>)> = rows!(
                        self.db(),
                        (String, String, String, Option<i64>),
                        "SELECT variant, item, product, available FROM ferry_skus WHERE store = $1 AND sku = $2",
                        &child.name,
                        &sku
                    )?;
                    match found.len() {
                        0 => {}
                        1 => matches.extend(found),
                        _ => {
                            problem = Some((sku, "duplicate_sku_in_child"));
                            break;
                        }
                    }
                }
                let mut products: Vec<&String> = matches.iter().map(|m| &m.2).collect();
                products.sort();
                products.dedup();
                if problem.is_none() && products.len() > 1 {
                    problem = Some((String::new(), "variants_on_several_products"));
                }
                if let Some((sku, reason)) = problem {
                    refused += 1;
                    self.problem(&child.name, &p.id, &sku, reason).await?;
                    continue;
                }
                if let Some(copy) = products.first() {
                    // An existing copy: linked; the push then applies the parent's fields
                    // and stock (the parent is the network's truth at connect).
                    linked += 1;
                    for (variant, item, _, available) in &matches {
                        if let Some(a) = available {
                            self.inner.net.set_level(&child.name, item, *a).await?;
                        }
                        let _ = variant;
                    }
                    self.inner
                        .net
                        .set_link(&child.name, &p.id, Some(copy), LinkState::Linked, 0)
                        .await?;
                } else {
                    missing += 1;
                }
                jobs.push(self.push_job(&child.name, &p.id, Some(p.clone()), &cause)?);
            }
            self.inner.queue.enqueue_batch(jobs).await?;
        }
        tracing::info!(child = %child.name, linked, missing, refused, %mode, "catalog linked by SKU");
        self.inner
            .net
            .audit(
                &child.name,
                "catalog",
                "connect",
                &json!({"linked": linked, "copied": missing, "refused": refused}),
                &cause,
            )
            .await?;
        Ok(((linked + missing + refused) as i64, missing as i64, mode))
    }

    /// Parent products a child's catalog could not be linked for, and why.
    pub async fn link_problems(
        &self,
        child: &str,
    ) -> Result<Vec<(String, String, String)>, SyncError> {
        Ok(rows!(
            self.db(),
            (String, String, String),
            "SELECT parent_product, sku, reason FROM ferry_link_problems WHERE child = $1 ORDER BY parent_product, sku",
            child
        )?)
    }
}
