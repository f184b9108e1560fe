//! Reconciliation: every child compared with the parent page by page (incremental by the
//! parent's `updated_at` cursor, or a full pass), drift repaired through the normal write path,
//! each run recorded.

use ferry_connect::Pages;
use ferry_db::{exec, rows};
use serde::Serialize;

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
            self.reconcile_child(&child, j.full, &mut |_| {}).await?;
        }
        Ok(())
    }

    /// Compares a child with the parent (every product with `full`, else those changed since
    /// the last run), repairs what drifted through the same write path, and records the run.
    /// `progress` sees the number of products checked so far.
    pub async fn reconcile_child(
        &self,
        child: &StoreConfig,
        full: bool,
        progress: &mut (dyn FnMut(i64) + Send),
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
        let outcome = self
            .reconcile_pass(&parent, child, since, &mut run, progress)
            .await;
        run.finished_ms = Some(self.now_ms());
        run.state = if outcome.is_ok() {
            RunState::Done
        } else {
            RunState::Failed
        };
        run.error = outcome.as_ref().err().map(SyncError::brief);
        exec!(
            self.db(),
            "UPDATE ferry_sync_runs SET state = $2, finished_ms = $3, checked = $4, created = $5, updated = $6, stock_fixed = $7, cursor_ms = $8, error = $9 WHERE id = $1",
            &run.id,
            run.state,
            run.finished_ms,
            run.checked,
            run.created,
            run.updated,
            run.stock_fixed,
            run.cursor_ms,
            &run.error
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
        progress: &mut (dyn FnMut(i64) + Send),
    ) -> Result<(), SyncError> {
        // Sales first on both sides, so stock compares against counted orders.
        self.catch_up_orders(parent).await?;
        self.catch_up_orders(child).await?;
        let pshop = self.shop(parent).await?;
        let cshop = self.shop(child).await?;
        let cause = format!("reconcile {}", run.id);
        let stale = self.now_ms() - self.inner.opts.intent_ttl.as_millis() as i64;
        let pshop_ref = &pshop;
        let mut pages =
            Pages::new(
                |c| async move { pshop_ref.products_updated_since(since, c.as_deref()).await },
            );
        while let Some(page) = pages.next().await? {
            let mut jobs = Vec::new();
            // The page's copies are read at once (the page bounds both memory and requests
            // in flight).
            let mut links = Vec::with_capacity(page.len());
            for p in &page {
                links.push(self.inner.net.link(&child.name, &p.id).await?);
            }
            let copies = futures_util::future::join_all(links.iter().map(|link| async {
                match link.as_ref().and_then(|l| l.child_product.as_deref()) {
                    Some(id) if link.as_ref().is_some_and(|l| l.state == LinkState::Linked) => {
                        cshop.product(id).await
                    }
                    _ => Ok(None),
                }
            }))
            .await;
            for (p, copy) in page.into_iter().zip(copies) {
                let copy = copy?;
                run.checked += 1;
                run.cursor_ms = run.cursor_ms.max(p.updated_at);
                self.note_parent_levels(&parent.name, &p).await?;
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
                for l in self.inner.net.variant_links(&child.name, &p.id).await? {
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
            progress(run.checked);
        }
        Ok(())
    }

    /// Reconciliation runs, newest first.
    pub async fn runs(&self, limit: i64) -> Result<Vec<RunReport>, SyncError> {
        Ok(rows!(
            self.db(),
            RunReport,
            "SELECT id, child, full_pass, state, started_ms, finished_ms, checked, created, updated, stock_fixed, cursor_ms, error
             FROM ferry_sync_runs ORDER BY started_ms DESC, id DESC LIMIT $1",
            limit
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
