//! Reading a store's whole catalog: paged at or below `bulk_threshold_products`, by bulk export
//! above it (one asynchronous query whose JSONL result is streamed; Shopify does not charge it
//! to the rate budget, so a large catalog reads in minutes instead of hours of budget). An
//! export that fails is paged instead, and the run says so. A run's phase (which store's
//! export, its status and object count) is written to its record as it moves, for
//! `GET /api/sync/runs` and the terminal.

use ferry_connect::shopify::ShopifyConnector;
use ferry_connect::shopify::bulk::{BulkProgress, CatalogStream, Export, ExportPlan};
use ferry_connect::shopify::model::Product;
use ferry_db::{exec, rows, tx_exec};
use serde::Serialize;

use crate::engine::Engine;
use crate::error::SyncError;
use crate::network::StoreConfig;

/// Products handed on at once from an export (a page bounds memory as a paged read does).
const BULK_PAGE: usize = 100;

/// What a run shows while it goes: products compared so far and what it is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunProgress {
    pub checked: i64,
    pub phase: String,
}

/// A whole catalog, a page at a time, from either source.
pub enum CatalogReader<'a> {
    Paged {
        shop: &'a ShopifyConnector,
        /// Only products updated at or after this (epoch ms).
        since: Option<i64>,
        cursor: Option<String>,
        done: bool,
    },
    Bulk(Box<CatalogStream>),
}

impl<'a> CatalogReader<'a> {
    pub fn paged(shop: &'a ShopifyConnector) -> CatalogReader<'a> {
        CatalogReader::changed_since(shop, None)
    }

    /// Products updated at or after `since`, oldest first (an incremental pass's cursor).
    pub fn changed_since(shop: &'a ShopifyConnector, since: Option<i64>) -> CatalogReader<'a> {
        CatalogReader::Paged {
            shop,
            since,
            cursor: None,
            done: false,
        }
    }

    pub fn is_bulk(&self) -> bool {
        matches!(self, CatalogReader::Bulk(_))
    }

    /// The next page of whole products; `None` when the catalog is read.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Product>>, SyncError> {
        match self {
            CatalogReader::Paged {
                shop,
                since,
                cursor,
                done,
            } => {
                if *done {
                    return Ok(None);
                }
                let (items, next) = shop
                    .products_updated_since(*since, cursor.as_deref())
                    .await?;
                match next {
                    Some(c) => *cursor = Some(c),
                    None => *done = true,
                }
                Ok(Some(items))
            }
            CatalogReader::Bulk(stream) => Ok(stream.next_page(BULK_PAGE).await?),
        }
    }
}

/// Where a run records its phase (none: a parent's connect, which has no run), and who else
/// hears it.
pub struct PhaseSink<'p> {
    pub run: Option<String>,
    pub progress: &'p mut (dyn FnMut(&RunProgress) + Send),
    pub checked: i64,
    /// The last phase set.
    pub phase: String,
}

impl<'p> PhaseSink<'p> {
    pub fn new(run: Option<String>, progress: &'p mut (dyn FnMut(&RunProgress) + Send)) -> Self {
        PhaseSink {
            run,
            progress,
            checked: 0,
            phase: String::new(),
        }
    }
}

impl Engine {
    /// Writes a run's phase and tells the caller.
    pub(crate) async fn set_phase(
        &self,
        sink: &mut PhaseSink<'_>,
        phase: String,
    ) -> Result<(), SyncError> {
        if let Some(run) = &sink.run {
            exec!(
                self.db(),
                "UPDATE ferry_sync_runs SET phase = $2 WHERE id = $1",
                run,
                &phase
            )?;
        }
        tracing::debug!(run = ?sink.run, checked = sink.checked, %phase, "run phase");
        (sink.progress)(&RunProgress {
            checked: sink.checked,
            phase: phase.clone(),
        });
        sink.phase = phase;
        Ok(())
    }

    /// Whether `store`'s catalog is large enough to be read by bulk export.
    pub(crate) async fn wants_bulk(&self, shop: &ShopifyConnector) -> Result<bool, SyncError> {
        let threshold = self.inner.opts.bulk_threshold_products;
        if threshold == u64::MAX {
            return Ok(false);
        }
        Ok(shop.products_count(threshold).await? > threshold)
    }

    /// Starts a store's export without waiting for it (parts the busy shop has no room for
    /// are waited for when it is followed).
    pub(crate) async fn start_export(
        &self,
        store: &StoreConfig,
        shop: &ShopifyConnector,
    ) -> Result<ExportPlan, SyncError> {
        Ok(shop
            .start_catalog_export(location(store), &self.inner.opts.bulk)
            .await?)
    }

    /// A store's whole catalog: by bulk export when `bulk` (following `started` if given),
    /// else paged. A failed export is paged, its reason added to `notes`.
    pub(crate) async fn whole_catalog<'a>(
        &self,
        store: &StoreConfig,
        shop: &'a ShopifyConnector,
        bulk: bool,
        started: Option<ExportPlan>,
        sink: &mut PhaseSink<'_>,
        notes: &mut Vec<String>,
    ) -> Result<CatalogReader<'a>, SyncError> {
        if !bulk {
            self.set_phase(sink, format!("paging {}", store.name))
                .await?;
            return Ok(CatalogReader::paged(shop));
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<BulkProgress>();
        let opts = &self.inner.opts.bulk;
        // The sender lives in the export's future: the channel closes when it ends.
        let export = async move {
            let mut hear = move |p: &BulkProgress| {
                let _ = tx.send(p.clone());
            };
            shop.export_catalog(location(store), started, opts, &mut hear)
                .await
        };
        // Phases are written as they come while the export keeps running: both are polled,
        // so a part holding a database connection is never stalled behind a phase's write.
        let record = async {
            while let Some(p) = rx.recv().await {
                let parts = if p.parts > 1 {
                    format!(" ({} parts)", p.parts)
                } else {
                    String::new()
                };
                let phase = format!(
                    "bulk export of {}{parts}: {}, {} objects",
                    store.name, p.phase, p.objects
                );
                self.set_phase(sink, phase).await?;
            }
            Ok::<(), SyncError>(())
        };
        let (outcome, recorded) = tokio::join!(export, record);
        recorded?;
        match outcome? {
            Export::Ready(stream) => {
                self.set_phase(sink, format!("reading the export of {}", store.name))
                    .await?;
                Ok(CatalogReader::Bulk(stream))
            }
            Export::Failed { reason } => {
                tracing::warn!(store = %store.name, %reason, "bulk export failed; paging instead");
                notes.push(format!("{}: {reason}; paged instead", store.name));
                self.set_phase(sink, format!("paging {} (bulk export failed)", store.name))
                    .await?;
                Ok(CatalogReader::paged(shop))
            }
        }
    }

    /// Holds a child's exported catalog for the run, so the parent's can be compared with it
    /// a page at a time (the export is one stream in the child's order).
    pub(crate) async fn spill(
        &self,
        run: &str,
        reader: &mut CatalogReader<'_>,
        sink: &mut PhaseSink<'_>,
    ) -> Result<u64, SyncError> {
        let mut n = 0u64;
        while let Some(page) = reader.next_page().await? {
            let mut tx = self.db().begin().await?;
            for p in &page {
                let body = serde_json::to_string(p)
                    .map_err(|e| SyncError::Invalid(format!("a product did not serialize: {e}")))?;
                tx_exec!(
                    tx,
                    "INSERT INTO ferry_bulk_copies (run, product, body) VALUES ($1, $2, $3)
                     ON CONFLICT (run, product) DO UPDATE SET body = $3",
                    run,
                    &p.id,
                    &body
                )?;
            }
            tx.commit().await?;
            n += page.len() as u64;
            if n % 10_000 < page.len() as u64 {
                self.set_phase(sink, format!("holding the child's export: {n} products"))
                    .await?;
            }
        }
        Ok(n)
    }

    /// Copies from the child's export held for `run`, by product id (one statement a page).
    pub(crate) async fn spilled_page(
        &self,
        run: &str,
        ids: &[&str],
    ) -> Result<std::collections::HashMap<String, Product>, SyncError> {
        let sql = format!(
            "SELECT product, body FROM ferry_bulk_copies WHERE run = $1 AND product IN ({})",
            self.db().dialect().json_texts("$2")
        );
        let ids = crate::network::json_list(ids);
        let found: Vec<(String, String)> = rows!(
            self.db(),
            (String, String),
            sqlx::AssertSqlSafe(sql),
            run,
            ids
        )?;
        found
            .into_iter()
            .map(|(id, b)| {
                serde_json::from_str(&b)
                    .map(|p| (id, p))
                    .map_err(|e| SyncError::Invalid(format!("a held copy did not read back: {e}")))
            })
            .collect()
    }

    /// Drops what earlier runs of `child` held and did not delete (a process that died
    /// mid-run): runs that ended, and runs started over a day before `now_ms`.
    pub(crate) async fn prune_spills(&self, child: &str, now_ms: i64) -> Result<(), SyncError> {
        exec!(
            self.db(),
            "DELETE FROM ferry_bulk_copies WHERE run IN
               (SELECT id FROM ferry_sync_runs WHERE child = $1 AND (state <> $2 OR started_ms < $3))",
            child,
            crate::reconcile::RunState::Running,
            now_ms - 24 * 3600 * 1000
        )?;
        Ok(())
    }

    pub(crate) async fn drop_spill(&self, run: &str) -> Result<(), SyncError> {
        exec!(
            self.db(),
            "DELETE FROM ferry_bulk_copies WHERE run = $1",
            run
        )?;
        Ok(())
    }
}

/// The network's location in a store, once connected: its levels are what a variant holds.
fn location(store: &StoreConfig) -> Option<&str> {
    Some(store.location_id.as_str()).filter(|l| !l.is_empty())
}
