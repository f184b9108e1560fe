//! Per-minute samples of each queue: what the workers completed and failed (per queue and per
//! group) and the queue's depth. Workers add their tallies once a minute; the dashboard draws
//! charts from them and a store's error rate over the last hour. Pruned by retention.

use std::collections::HashMap;

use crate::error::Result;
use crate::queue::Queue;

const MINUTE_MS: i64 = 60_000;

/// Outcomes a worker counted since its last flush: queue → group → (completed, failed).
/// Nested so that counting a job looks up by `&str` and allocates only for a new name.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    counts: HashMap<String, HashMap<String, (i64, i64)>>,
}

impl Tally {
    pub(crate) fn add(&mut self, queue: &str, group: &str, ok: bool) {
        if !self.counts.contains_key(queue) {
            self.counts.insert(queue.to_owned(), HashMap::new());
        }
        let Some(groups) = self.counts.get_mut(queue) else {
            return;
        };
        if !groups.contains_key(group) {
            groups.insert(group.to_owned(), (0, 0));
        }
        if let Some(e) = groups.get_mut(group) {
            if ok {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The rows to add: one per group that has a name, and one per queue (group '') with the
    /// queue's totals, jobs without a group included.
    fn rows(self) -> Vec<(String, String, i64, i64)> {
        let mut out = Vec::new();
        for (queue, groups) in self.counts {
            let (mut ok_sum, mut failed_sum) = (0, 0);
            for (group, (ok, failed)) in groups {
                ok_sum += ok;
                failed_sum += failed;
                if !group.is_empty() {
                    out.push((queue.clone(), group, ok, failed));
                }
            }
            out.push((queue, String::new(), ok_sum, failed_sum));
        }
        out
    }
}

/// One point of a queue's chart: a bucket starting at `at_ms`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Sample {
    pub at_ms: i64,
    pub completed: i64,
    pub failed: i64,
    /// The deepest the queue was seen in the bucket (ready now), if anyone looked.
    pub ready: Option<i64>,
    pub running: Option<i64>,
    pub dead: Option<i64>,
}

/// A group's (a store's) outcomes over a window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupActivity {
    pub completed: i64,
    pub failed: i64,
    /// The start of the last minute in which one of its jobs completed.
    pub last_success_ms: Option<i64>,
    /// Whether, in the latest minute any of its jobs ran, they all failed: failing now, not
    /// only earlier in the window.
    pub failing_now: bool,
}

impl Queue {
    /// The start of the minute `ms` falls in.
    fn minute_of(ms: i64) -> i64 {
        ms.div_euclid(MINUTE_MS) * MINUTE_MS
    }

    /// Adds a worker's tally to this minute's samples.
    pub(crate) async fn add_samples(&self, tally: Tally) -> Result<()> {
        let minute = Self::minute_of(self.now_ms());
        let sql = "INSERT INTO ferry_queue_samples (queue, group_key, minute_ms, completed, failed)
                   VALUES ($1, $2, $3, $4, $5)
                   ON CONFLICT (queue, group_key, minute_ms) DO UPDATE SET
                     completed = ferry_queue_samples.completed + excluded.completed,
                     failed = ferry_queue_samples.failed + excluded.failed";
        let db = self.db();
        for (queue, group, ok, failed) in tally.rows() {
            ferry_db::exec!(&db, sql, &queue, &group, minute, ok, failed)?;
        }
        Ok(())
    }

    /// Records every queue's depth for this minute, unless a worker already did; counts
    /// capped at `cap` as the dashboard's are.
    pub(crate) async fn sample_depth(&self, cap: i64) -> Result<()> {
        let minute = Self::minute_of(self.now_ms());
        let db = self.db();
        let seen = ferry_db::row!(
            &db,
            (i64,),
            "SELECT minute_ms FROM ferry_queue_samples WHERE minute_ms = $1 AND ready IS NOT NULL LIMIT 1",
            minute
        )?;
        if seen.is_some() {
            return Ok(());
        }
        let sql =
            "INSERT INTO ferry_queue_samples (queue, group_key, minute_ms, ready, running, dead)
                   VALUES ($1, '', $2, $3, $4, $5)
                   ON CONFLICT (queue, group_key, minute_ms) DO UPDATE SET
                     ready = excluded.ready, running = excluded.running, dead = excluded.dead";
        for q in self.glance_all(cap).await? {
            ferry_db::exec!(&db, sql, &q.queue, minute, q.ready, q.running, q.dead)?;
        }
        Ok(())
    }

    /// Deletes samples older than `keep`.
    pub async fn prune_samples(&self, keep: std::time::Duration) -> Result<u64> {
        let before = self.now_ms() - keep.as_millis() as i64;
        Ok(ferry_db::exec!(
            &self.db(),
            "DELETE FROM ferry_queue_samples WHERE minute_ms < $1",
            before
        )?)
    }

    /// A queue's chart from `from_ms` on, in buckets of `bucket_ms` (a whole number of
    /// minutes): outcomes summed, depth at its highest. Oldest first; a bucket nobody
    /// sampled is absent.
    pub async fn samples(&self, queue: &str, from_ms: i64, bucket_ms: i64) -> Result<Vec<Sample>> {
        let bucket = Self::minute_of(bucket_ms).max(MINUTE_MS);
        let rows = ferry_db::rows!(
            &self.db(),
            (i64, i64, i64, Option<i64>, Option<i64>, Option<i64>),
            "SELECT (minute_ms / $3) * $3 AS b, CAST(SUM(completed) AS BIGINT), CAST(SUM(failed) AS BIGINT),
                    MAX(ready), MAX(running), MAX(dead)
             FROM ferry_queue_samples WHERE queue = $1 AND group_key = '' AND minute_ms >= $2
             GROUP BY b ORDER BY b",
            queue,
            Self::minute_of(from_ms),
            bucket
        )?;
        Ok(rows
            .into_iter()
            .map(|(at_ms, completed, failed, ready, running, dead)| Sample {
                at_ms,
                completed,
                failed,
                ready,
                running,
                dead,
            })
            .collect())
    }

    /// How long the job at the head of a group's (a store's) line in `queue` has been ready,
    /// in ms (0: none ready): the first ready job in the group's index order (priority, then
    /// round), a short index walk however deep the backlog.
    pub async fn group_lag_ms(&self, queue: &str, group: &str) -> Result<i64> {
        let now = self.now_ms();
        let row = ferry_db::row!(
            &self.db(),
            (i64,),
            "SELECT run_at FROM ferry_jobs
             WHERE queue = $1 AND group_key = $2 AND state IN ('queued', 'retrying') AND run_at <= $3
             ORDER BY priority, fair_round LIMIT 1",
            queue,
            group,
            now
        )?;
        Ok(row.map_or(0, |(at,)| (now - at).max(0)))
    }

    /// Every group's (store's) jobs completed and failed since `from_ms`, over every queue,
    /// by group (groups with no sample are absent). One read of the window's samples.
    pub async fn groups_activity(&self, from_ms: i64) -> Result<HashMap<String, GroupActivity>> {
        let rows = ferry_db::rows!(
            &self.db(),
            (String, i64, i64, i64),
            // The window's rows as they are, summed here: a GROUP BY would invite SQLite to
            // walk the whole group index (sorted already) instead of the window's minutes.
            "SELECT group_key, minute_ms, completed, failed FROM ferry_queue_samples
             WHERE minute_ms >= $1 AND group_key <> ''",
            Self::minute_of(from_ms)
        )?;
        // Per group: the sums, and per minute (over every queue) to find the latest one.
        let mut minutes: HashMap<String, std::collections::BTreeMap<i64, (i64, i64)>> =
            HashMap::new();
        for (group, minute, ok, failed) in rows {
            let m = minutes.entry(group).or_default().entry(minute).or_default();
            m.0 += ok;
            m.1 += failed;
        }
        Ok(minutes
            .into_iter()
            .map(|(group, by_minute)| {
                let mut a = GroupActivity::default();
                for (&minute, &(ok, failed)) in &by_minute {
                    a.completed += ok;
                    a.failed += failed;
                    if ok > 0 {
                        a.last_success_ms = Some(minute);
                    }
                }
                a.failing_now = by_minute
                    .last_key_value()
                    .is_some_and(|(_, &(ok, failed))| ok == 0 && failed > 0);
                (group, a)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_adds_queue_totals_and_named_groups() {
        let mut t = Tally::default();
        t.add("sync", "shop-a", true);
        t.add("sync", "shop-a", false);
        t.add("sync", "", true);
        t.add("orders", "shop-b", true);
        let mut rows = t.rows();
        rows.sort();
        assert_eq!(
            rows,
            vec![
                ("orders".into(), "".into(), 1, 0),
                ("orders".into(), "shop-b".into(), 1, 0),
                ("sync".into(), "".into(), 2, 1),
                ("sync".into(), "shop-a".into(), 1, 1),
            ]
        );
    }
}
