//! `--max-rate`: a token bucket per origin node for the chat lines relayed from other
//! nodes. A link is the wrong unit (one link carries everybody's lines), so is the
//! node as a whole (one chatty origin would silence the rest).
//!
//! The table of buckets is bounded: a bucket that has refilled is the same as a new
//! one and is forgotten first, then the one heard from longest ago. Origins are the
//! authors that signed the lines, checked before a line is counted here, so nobody
//! spends another node's rate; a member with many keys still has a bucket for each.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::config::MaxRate;

use super::ids::NodeId;

/// Origins tracked at the most.
const CAPACITY: usize = 4096;

/// How often the log may speak of one origin over the rate.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// What to do with one line from an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the rate: deliver and relay it.
    Pass,
    /// Over the rate: drop it.
    Drop,
    /// Over the rate: drop it, and say so in the log; `dropped` lines of this origin,
    /// this one included, were dropped since it was last said.
    DropAndReport { dropped: u64 },
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// Lines dropped since the last report.
    dropped: u64,
    last_report: Option<Instant>,
}

/// The buckets and the counter `/status` reports.
#[derive(Debug)]
pub struct RateLimiter {
    max: MaxRate,
    buckets: BTreeMap<NodeId, Bucket>,
    /// Lines dropped for being over the rate, in all.
    pub dropped: u64,
}

impl RateLimiter {
    pub fn new(max: MaxRate) -> Self {
        RateLimiter {
            max,
            buckets: BTreeMap::new(),
            dropped: 0,
        }
    }

    pub fn max(&self) -> MaxRate {
        self.max
    }

    /// Takes a token for each of `lines` lines from `origin` (signed together, so all
    /// pass or none), if it has one at least: a batch may run the bucket into debt,
    /// which the next lines pay back.
    pub fn admit(&mut self, origin: NodeId, lines: u64, now: Instant) -> Verdict {
        if !self.buckets.contains_key(&origin) && self.buckets.len() >= CAPACITY {
            self.make_room(now);
        }
        let burst = f64::from(self.max.burst);
        let bucket = self.buckets.entry(origin).or_insert(Bucket {
            tokens: burst,
            last: now,
            dropped: 0,
            last_report: None,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * f64::from(self.max.per_sec)).min(burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= lines as f64;
            return Verdict::Pass;
        }
        bucket.dropped += lines;
        self.dropped += lines;
        let due = bucket
            .last_report
            .is_none_or(|at| now.saturating_duration_since(at) >= REPORT_EVERY);
        if !due {
            return Verdict::Drop;
        }
        bucket.last_report = Some(now);
        Verdict::DropAndReport {
            dropped: std::mem::take(&mut bucket.dropped),
        }
    }

    /// Forgets every bucket that has refilled by `now`, or else the quarter heard from
    /// longest ago: a forger inventing origins pays for this once per thousand of them,
    /// not once per line.
    fn make_room(&mut self, now: Instant) {
        let refill = f64::from(self.max.burst) / f64::from(self.max.per_sec);
        let before = self.buckets.len();
        self.buckets
            .retain(|_, b| now.saturating_duration_since(b.last).as_secs_f64() < refill);
        if self.buckets.len() < before {
            return;
        }
        let mut by_age: Vec<(Instant, NodeId)> =
            self.buckets.iter().map(|(&id, b)| (b.last, id)).collect();
        by_age.sort_unstable();
        for (_, origin) in &by_age[..by_age.len() / 4] {
            self.buckets.remove(origin);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_sec: u32, burst: u32) -> RateLimiter {
        RateLimiter::new(MaxRate { per_sec, burst })
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let mut rl = limiter(10, 3);
        let t = Instant::now();
        let origin = NodeId(1);
        let verdicts: Vec<Verdict> = (0..5).map(|_| rl.admit(origin, 1, t)).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Pass,
                Verdict::Pass,
                Verdict::Pass,
                Verdict::DropAndReport { dropped: 1 },
                Verdict::Drop
            ]
        );
        // A tenth of a second buys one line.
        let t = t + Duration::from_millis(100);
        assert_eq!(rl.admit(origin, 1, t), Verdict::Pass);
        assert_eq!(rl.admit(origin, 1, t), Verdict::Drop);
        assert_eq!(rl.dropped, 3);
    }

    #[test]
    fn an_origin_over_the_rate_is_reported_once_every_ten_seconds() {
        let mut rl = limiter(10, 1);
        let origin = NodeId(1);
        let start = Instant::now();
        let mut reports = Vec::new();
        // Eleven lines a second, for a minute.
        for i in 0..660 {
            let t = start + Duration::from_millis(i * 1000 / 11);
            if let Verdict::DropAndReport { dropped } = rl.admit(origin, 1, t) {
                reports.push(dropped);
            }
        }
        assert_eq!(reports.len(), 6, "{reports:?}");
        // Each report counts the drops since the one before; the last ones wait.
        assert_eq!(reports, [1, 55, 55, 55, 55, 55]);
    }

    #[test]
    fn origins_have_buckets_of_their_own() {
        let mut rl = limiter(1, 1);
        let t = Instant::now();
        assert_eq!(rl.admit(NodeId(1), 1, t), Verdict::Pass);
        assert_eq!(
            rl.admit(NodeId(1), 1, t),
            Verdict::DropAndReport { dropped: 1 }
        );
        assert_eq!(rl.admit(NodeId(2), 1, t), Verdict::Pass);
    }

    #[test]
    fn the_table_stays_bounded_and_forgets_refilled_buckets_first() {
        let mut rl = limiter(1, 1);
        let t = Instant::now();
        for id in 0..CAPACITY as u64 {
            rl.admit(NodeId(id), 1, t);
        }
        // Origin 0 is over its rate, later; the others have refilled by then.
        let later = t + Duration::from_secs(5);
        assert_eq!(rl.admit(NodeId(0), 1, later), Verdict::Pass);
        assert_ne!(rl.admit(NodeId(0), 1, later), Verdict::Pass);
        assert_eq!(rl.admit(NodeId(u64::MAX), 1, later), Verdict::Pass);
        assert!(rl.buckets.len() <= CAPACITY);
        assert_eq!(
            rl.admit(NodeId(0), 1, later),
            Verdict::Drop,
            "the limited origin was not forgotten"
        );
    }

    #[test]
    fn a_full_table_of_busy_origins_forgets_the_quietest_quarter_at_once() {
        // No bucket refills within the test's few seconds.
        let mut rl = limiter(1, 100);
        let t = Instant::now();
        for id in 0..CAPACITY as u64 {
            rl.admit(NodeId(id), 1, t + Duration::from_millis(id));
        }
        rl.admit(
            NodeId(u64::MAX),
            1,
            t + Duration::from_millis(CAPACITY as u64),
        );
        assert_eq!(rl.buckets.len(), CAPACITY - CAPACITY / 4 + 1);
        assert!(!rl.buckets.contains_key(&NodeId(0)));
        assert!(rl.buckets.contains_key(&NodeId(CAPACITY as u64 / 4)));
    }
}
