//! Reconciliation: every child compared with the parent page by page (incremental by the
//! parent's `updated_at` cursor, or a full pass), drift repaired through the normal write path,
//! each run recorded. A full pass over a large catalog reads both stores by bulk export
//! (`crate::bulk`): the child's is held for the run, the parent's streamed against it.

use ferry_connect::shopify::ShopifyConnector;
use ferry_connect::shopify::model::Product;
use ferry_db::{exec, rows};
use serde::Serialize;

use crate::bulk::{CatalogReader, PhaseSink, RunProgress};
use crate::engine::Engine;
use crate::error::SyncError;
use crate::jobs::*;
use crate::network::StoreConfig;
use crate::network::{LinkState, StoreState};
use crate::plan::{collections_match, plan, satisfied};

ferry_db::text_enum! {
    /// Where a reconciliation run stands.
    #[derive(Serialize, Default)]
    #[serde(rename_all = "snake_case")]
    pub enum RunState {
        #[default]
        Running = "running",
        Done = "done",
        Failed = "failed",
    }
}

/// What a reconciliation run found and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, sqlx::FromRow)]
pub struct RunReport {
    pub id: String,
    pub child: String,
    pub full_pass: i64,
    pub state: RunState,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    pub checked: i64,
    pub created: i64,
    pub updated: i64,
    pub stock_fixed: i64,
    pub cursor_ms: i64,
    pub error: Option<String>,
    /// How the catalogs were read: `paged`, `bulk`, or why an export was paged instead.
    pub mode: String,
    /// Where the run is (or stopped): a bulk export's status and object count, paging, comparing.
    pub phase: String,
}

impl Engine {
    pub(crate) async fn reconcile(&self, j: ReconcileJob) -> Result<(), SyncError> {
        let children = match &j.child {
            Some(c) => vec![self.inner.net.store(c).await?],
            None => self.inner.net.children().await?,
        };
        for child in children
            .into_iter()
            .filter(|c| c.state == StoreState::Connected)
        {
            self.reconcile_child(&child, j.full, &mut |_: &RunProgress| {})
                .await?;
        }
        Ok(())
    }

    /// Compares a child with the parent (every product with `full`, else those changed since
    /// the last run), repairs what drifted through the same write path, and records the run.
    /// `progress` sees the products checked so far and the phase.
    pub async fn reconcile_child(
        &self,
        child: &StoreConfig,
        full: bool,
        progress: &mut (dyn FnMut(&RunProgress) + Send),
    ) -> Result<RunReport, SyncError> {
        let parent = self.inner.net.parent().await?;
        let since: Option<i64> = if full {
            None
        } else {
            self.last_cursor(&child.name).await?
        };
        let mut run = RunReport {
            id: uuid::Uuid::now_v7().to_string(),
            child: child.name.clone(),
            full_pass: i64::from(full),
            state: RunState::Running,
            started_ms: self.now_ms(),
            cursor_ms: since.unwrap_or(0),
            mode: "paged".into(),
            ..RunReport::default()
        };
        exec!(
            self.db(),
            "INSERT INTO ferry_sync_runs (id, child, full_pass, state, started_ms, cursor_ms) VALUES ($1, $2, $3, $4, $5, $6)",
            &run.id,
            &run.child,
            run.full_pass,
            run.state,
            run.started_ms,
            run.cursor_ms
        )?;
        let mut sink = PhaseSink::new(Some(run.id.clone()), progress);
        let outcome = self
            .reconcile_pass(&parent, child, since, &mut run, &mut sink)
            .await;
        run.phase = sink.phase;
        run.finished_ms = Some(self.now_ms());
        run.state = if outcome.is_ok() {
            RunState::Done
        } else {
            RunState::Failed
        };
        run.error = outcome.as_ref().err().map(SyncError::brief);
        exec!(
            self.db(),
            "UPDATE ferry_sync_runs SET state = $2, finished_ms = $3, checked = $4, created = $5, updated = $6, stock_fixed = $7, cursor_ms = $8, error = $9, mode = $10 WHERE id = $1",
            &run.id,
            run.state,
            run.finished_ms,
            run.checked,
            run.created,
            run.updated,
            run.stock_fixed,
            run.cursor_ms,
            &run.error,
            &run.mode
        )?;
        outcome.map(|_| run)
    }

    pub(crate) async fn last_cursor(&self, child: &str) -> Result<Option<i64>, SyncError> {
        let r: Vec<(i64,)> = rows!(
            self.db(),
            (i64,),
            "SELECT cursor_ms FROM ferry_sync_runs WHERE child = $1 AND state = $2 ORDER BY started_ms DESC LIMIT 1",
            child,
            RunState::Done
        )?;
        Ok(r.first().map(|(c,)| *c).filter(|c| *c > 0))
    }

    pub(crate) async fn reconcile_pass(
        &self,
        parent: &StoreConfig,
        child: &StoreConfig,
        since: Option<i64>,
        run: &mut RunReport,
        sink: &mut PhaseSink<'_>,
    ) -> Result<(), SyncError> {
        // Sales first on both sides, so stock compares against counted orders.
        self.catch_up_orders(parent).await?;
        self.catch_up_orders(child).await?;
        let pshop = self.shop(parent).await?;
        let cshop = self.shop(child).await?;
        let mut held = false;
        let mut notes = Vec::new();
        let mut parents = match since {
            Some(_) => CatalogReader::changed_since(&pshop, since),
            None => {
                let parent_bulk = self.wants_bulk(&pshop).await?;
                let child_bulk = self.wants_bulk(&cshop).await?;
                // The parent's export runs on the platform while the child's is read and held.
                let started = if parent_bulk {
                    Some(self.start_export(parent, &pshop).await?)
                } else {
                    None
                };
                if child_bulk {
                    let mut copies = self
                        .whole_catalog(child, &cshop, true, None, sink, &mut notes)
                        .await?;
                    if copies.is_bulk() {
                        held = true;
                        self.prune_spills(&child.name, run.started_ms).await?;
                        self.spill(&run.id, &mut copies, sink).await?;
                    }
                }
                self.whole_catalog(parent, &pshop, parent_bulk, started, sink, &mut notes)
                    .await?
            }
        };
        run.mode = match (parents.is_bulk() || held, notes.is_empty()) {
            (_, false) => notes.join("; "),
            (true, true) => "bulk".into(),
            (false, true) => "paged".into(),
        };
        let outcome = self
            .compare_all(parent, child, &cshop, &mut parents, held, run, sink)
            .await;
        if held {
            self.drop_spill(&run.id).await?;
        }
        outcome
    }

    /// Compares every parent product the reader yields with its copy, a page at a time.
    #[allow(clippy::too_many_arguments)]
    async fn compare_all(
        &self,
        parent: &StoreConfig,
        child: &StoreConfig,
        cshop: &ShopifyConnector,
        parents: &mut CatalogReader<'_>,
        held: bool,
        run: &mut RunReport,
        sink: &mut PhaseSink<'_>,
    ) -> Result<(), SyncError> {
        self.set_phase(sink, "comparing".into()).await?;
        while let Some(page) = parents.next_page().await? {
            // The page's links and copies are read at once (the page bounds both memory and
            // requests in flight), from the child's held export when there is one.
            let ids: Vec<&str> = page.iter().map(|p| p.id.as_str()).collect();
            let mut links = self.inner.net.links_of(&child.name, &ids).await?;
            let linked: Vec<Option<String>> = page
                .iter()
                .map(|p| {
                    links
                        .remove(&p.id)
                        .filter(|l| l.state == LinkState::Linked)
                        .and_then(|l| l.child_product)
                })
                .collect();
            let copies: Vec<Result<Option<Product>, SyncError>> = if held {
                let wanted: Vec<&str> = linked.iter().flatten().map(String::as_str).collect();
                let found = self.spilled_page(&run.id, &wanted).await?;
                linked
                    .iter()
                    .map(|id| Ok(id.as_ref().and_then(|id| found.get(id).cloned())))
                    .collect()
            } else {
                futures_util::future::join_all(linked.iter().map(|id| async move {
                    match id {
                        Some(id) => Ok(cshop.product(id).await?),
                        None => Ok(None),
                    }
                }))
                .await
            };
            self.compare_page(parent, child, page, copies, run).await?;
            sink.checked = run.checked;
            (sink.progress)(&RunProgress {
                checked: run.checked,
                phase: "comparing".into(),
            });
        }
        Ok(())
    }

    /// One page of parent products against their copies: the repairs enqueued.
    async fn compare_page(
        &self,
        parent: &StoreConfig,
        child: &StoreConfig,
        page: Vec<Product>,
        copies: Vec<Result<Option<Product>, SyncError>>,
        run: &mut RunReport,
    ) -> Result<(), SyncError> {
        let cause = format!("reconcile {}", run.id);
        let stale = self.now_ms() - self.inner.opts.intent_ttl.as_millis() as i64;
        let mut jobs = Vec::new();
        let ids: Vec<&str> = page.iter().map(|p| p.id.as_str()).collect();
        let mut variant_links = self.inner.net.variant_links_of(&child.name, &ids).await?;
        self.note_page_levels(&parent.name, &page).await?;
        for (p, copy) in page.into_iter().zip(copies) {
            let copy = copy?;
            run.checked += 1;
            run.cursor_ms = run.cursor_ms.max(p.updated_at);
            let needs_push = match &copy {
                None => {
                    run.created += 1;
                    true
                }
                Some(c)
                    if !satisfied(&plan(&p, &child.rules, Some(c)), c)
                        || !collections_match(&p, &child.rules, c) =>
                {
                    run.updated += 1;
                    true
                }
                Some(_) => false,
            };
            if needs_push {
                jobs.push(self.push_job(&child.name, &p.id, Some(p.clone()), &cause)?);
            }
            let Some(c) = copy else { continue };
            for l in variant_links.remove(&p.id).unwrap_or_default() {
                let want = p
                    .variants
                    .iter()
                    .find(|v| v.id == l.parent_variant)
                    .and_then(|v| v.available);
                let have = c
                    .variants
                    .iter()
                    .find(|v| v.id == l.child_variant)
                    .and_then(|v| v.available);
                let (Some(want), Some(have)) = (want, have) else {
                    continue;
                };
                // Skipped when ferry wrote either side lately: the snapshot read may
                // not show it yet (the next pass looks again).
                if want == have
                    || self
                        .inner
                        .net
                        .touched_since(&child.name, &l.child_item, run.started_ms, stale)
                        .await?
                    || self
                        .inner
                        .net
                        .touched_since(&parent.name, &l.parent_item, run.started_ms, stale)
                        .await?
                {
                    continue;
                }
                run.stock_fixed += 1;
                // What the child really holds, so the compare-and-set compares with it.
                self.inner
                    .net
                    .set_level(&child.name, &l.child_item, have)
                    .await?;
                self.inner
                    .net
                    .set_level(&parent.name, &l.parent_item, want)
                    .await?;
                let job = SetJob {
                    store: child.name.clone(),
                    item: l.child_item.clone(),
                    quantity: want,
                    key: format!("reconcile:{}:{}", run.id, l.child_item),
                    cause: cause.clone(),
                };
                jobs.push(
                    self.sync_job(&job, &child.name)?
                        .singleton(&format!("set:{}:{}", child.name, l.child_item))
                        .replace(),
                );
            }
        }
        self.inner.queue.enqueue_batch(jobs).await?;
        Ok(())
    }

    /// Reconciliation runs, newest first.
    pub async fn runs(&self, limit: i64) -> Result<Vec<RunReport>, SyncError> {
        Ok(rows!(
            self.db(),
            RunReport,
            "SELECT id, child, full_pass, state, started_ms, finished_ms, checked, created, updated, stock_fixed, cursor_ms, error, mode, phase
             FROM ferry_sync_runs ORDER BY started_ms DESC, id DESC LIMIT $1",
            limit
        )?)
    }

    /// A child's newest run (a connect or a reconciliation).
    pub async fn latest_run(&self, child: &str) -> Result<Option<RunReport>, SyncError> {
        Ok(ferry_db::row!(
            self.db(),
            RunReport,
            "SELECT id, child, full_pass, state, started_ms, finished_ms, checked, created, updated, stock_fixed, cursor_ms, error, mode, phase
             FROM ferry_sync_runs WHERE child = $1 ORDER BY started_ms DESC, id DESC LIMIT 1",
            child
        )?)
    }

    /// Whether any sync work is waiting or running (the demo and tests wait for quiet).
    pub async fn busy(&self) -> Result<bool, SyncError> {
        for q in Self::queues() {
            let s = self.inner.queue.stats(q).await?;
            if s.ready + s.scheduled + s.running > 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
