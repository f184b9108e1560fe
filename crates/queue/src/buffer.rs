//! A worker's local buffer: jobs it has claimed (leased, heartbeated) and not yet started.
//! Claiming many jobs per round trip is what makes a worker fast at low concurrency; the
//! buffer must not undo the queue's fairness, so jobs leave it highest priority first and, at
//! one priority, one group at a time in turn: a group with hundreds of buffered jobs delays
//! another group's job only until the refill that claims it, never behind its own backlog.
//! How many jobs to hold adapts to the rate they leave at and the claim's round trip.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::job::ClaimedJob;

/// A buffered job and the token that cancels it (set by the heartbeat or a cancel request).
pub(crate) struct Held {
    pub(crate) job: ClaimedJob,
    pub(crate) cancel: CancellationToken,
}

/// The jobs of one priority: per group in claim order, groups served in turn.
#[derive(Default)]
struct Lane {
    groups: HashMap<String, VecDeque<Held>>,
    turn: VecDeque<String>,
}

#[derive(Default)]
pub(crate) struct Buffer {
    lanes: BTreeMap<Reverse<i16>, Lane>,
    len: usize,
}

impl Buffer {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn push(&mut self, held: Held) {
        let lane = self.lanes.entry(Reverse(held.job.priority)).or_default();
        let group = held.job.group_key.clone();
        let jobs = lane.groups.entry(group.clone()).or_default();
        if jobs.is_empty() {
            lane.turn.push_back(group);
        }
        jobs.push_back(held);
        self.len += 1;
    }

    /// The next job to start: the highest priority, the group whose turn it is.
    pub(crate) fn pop(&mut self) -> Option<Held> {
        let mut entry = self.lanes.first_entry()?;
        let lane = entry.get_mut();
        let group = lane.turn.pop_front()?;
        let jobs = lane.groups.get_mut(&group)?;
        let held = jobs.pop_front()?;
        if jobs.is_empty() {
            lane.groups.remove(&group);
        } else {
            lane.turn.push_back(group);
        }
        if lane.turn.is_empty() {
            entry.remove();
        }
        self.len -= 1;
        Some(held)
    }

    /// Everything held, emptying the buffer (to hand back).
    pub(crate) fn drain(&mut self) -> Vec<Held> {
        let mut out = Vec::with_capacity(self.len);
        while let Some(h) = self.pop() {
            out.push(h);
        }
        out
    }
}

/// How many jobs to hold: enough that handlers never wait on a claim's round trip (the rate
/// jobs start at, times the round trip, with room to spare), at least one claim's worth of the
/// worker's concurrency, at most `max`. Fed after every claim.
pub(crate) struct Target {
    max: usize,
    floor: usize,
    rate_per_s: f64,
    rtt: Duration,
}

impl Target {
    pub(crate) fn new(concurrency: usize, max: usize) -> Target {
        Target {
            max: max.max(1),
            floor: concurrency.clamp(1, max.max(1)),
            rate_per_s: 0.0,
            rtt: Duration::ZERO,
        }
    }

    /// A claim took `rtt`.
    pub(crate) fn claimed_in(&mut self, rtt: Duration) {
        self.rtt = if self.rtt.is_zero() {
            rtt
        } else {
            (self.rtt + rtt) / 2
        };
    }

    /// Handlers finished `finished` jobs over `over` (a window long enough to mean something:
    /// a burst into free slots is not a rate).
    pub(crate) fn finished(&mut self, finished: usize, over: Duration) {
        if over.is_zero() {
            return;
        }
        // The first measurement is taken whole; later ones are averaged in.
        let sample = finished as f64 / over.as_secs_f64();
        self.rate_per_s = if self.rate_per_s == 0.0 {
            sample
        } else {
            0.5 * self.rate_per_s + 0.5 * sample
        };
    }

    /// Jobs to hold after a refill.
    pub(crate) fn size(&self) -> usize {
        // Four round trips' worth: a refill starts at half, so two are left when it lands.
        let cover = (self.rate_per_s * self.rtt.as_secs_f64() * 4.0).ceil() as usize;
        cover.clamp(self.floor, self.max)
    }

    /// Refill once no more than this many are held.
    pub(crate) fn low_mark(&self) -> usize {
        self.size() / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn held(group: &str, priority: i16) -> Held {
        Held {
            job: ClaimedJob {
                id: Uuid::now_v7(),
                queue: "q".into(),
                kind: "k".into(),
                payload: "{}".into(),
                priority,
                attempt: 1,
                max_attempts: 3,
                group_key: group.into(),
                singleton_key: None,
                created_at: 0,
                fair_round: 0,
            },
            cancel: CancellationToken::new(),
        }
    }

    #[test]
    fn groups_take_turns_and_priority_goes_first() {
        let mut b = Buffer::default();
        for _ in 0..100 {
            b.push(held("big", 0));
        }
        b.push(held("small", 0));
        assert_eq!(b.pop().map(|h| h.job.group_key).as_deref(), Some("big"));
        assert_eq!(
            b.pop().map(|h| h.job.group_key).as_deref(),
            Some("small"),
            "a new group's job is second, not 101st"
        );
        b.push(held("urgent", 5));
        assert_eq!(b.pop().map(|h| h.job.priority), Some(5));
        assert_eq!(b.len(), 99);
        assert_eq!(b.drain().len(), 99);
        assert!(b.is_empty() && b.pop().is_none());
    }

    #[test]
    fn the_target_follows_the_rate_and_the_round_trip() {
        let mut t = Target::new(10, 500);
        // Nothing beyond the handlers until a rate says so: workers sharing a backlog of slow
        // jobs must each get some.
        assert_eq!(t.size(), 10, "the concurrency until something is measured");
        // 50,000 jobs/s and a 2 ms claim: 400 cover four round trips.
        t.claimed_in(Duration::from_millis(2));
        t.finished(5_000, Duration::from_millis(100));
        t.finished(5_000, Duration::from_millis(100));
        assert!((300..=500).contains(&t.size()), "{}", t.size());
        // Slow handlers: the concurrency is enough.
        let mut slow = Target::new(32, 500);
        slow.claimed_in(Duration::from_millis(1));
        slow.finished(32, Duration::from_millis(100));
        assert_eq!(slow.size(), 32);
        assert_eq!(slow.low_mark(), 16);
    }
}
