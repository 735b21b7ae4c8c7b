//! Per-author logs: everything this node knows of every author's signed lines, in one
//! structure that answers four questions. Is a copy new (`seen`, per author run)? In
//! what order do lines reach the clients (in the author's, a line waiting a bounded
//! time for a missing predecessor)? What can a peer that lacks lines be sent (the
//! backlog, `store`)? What was said lately (`/history`)?
//!
//! It checks no signature: the node hands it only records whose signature holds, so
//! nothing here can be filled or spent by anyone but the author. Nor does it know
//! clients or peers: it says what to deliver and what to send, and the node does it.

mod seen;
mod store;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::wire::lines::{HaveEntry, Record, KEY_LEN};

use super::ids::NodeId;
use super::secure::node_id_of;
pub use seen::Seen;
use store::Store;
pub use store::StoreLimits;

/// How long a line waits for a missing predecessor of its author before it is
/// delivered anyway, with word of the gap.
pub const ORDER_WAIT: Duration = Duration::from_secs(1);

/// Records held back for order, per author run and in all: past either bound the
/// author's held lines are delivered at once, gaps and all.
const MAX_HELD_PER_AUTHOR: usize = 1024;
const MAX_HELD_BYTES: usize = 16 * 1024 * 1024;

/// A known author run ahead of everything seen of it by more than this is refused:
/// no run writes that many lines between two copies reaching a node.
pub const MAX_AHEAD: u64 = 1 << 40;

/// One author's run: the unit of sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FeedKey {
    pub author: NodeId,
    pub epoch: u64,
}

/// Lines for the clients: the lines `from..to` of `record`.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub record: Rc<[u8]>,
    pub from: u64,
    pub to: u64,
    /// Written a while ago: they reach this node through a catch-up or fill a gap.
    pub late: bool,
    /// Lines of this author that are missing just before these, given up on.
    pub missing: u64,
}

/// What became of a record handed to [`Logs::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Every line of it was seen before.
    Known,
    /// It holds `lines` new lines; `gap` when some now wait for a missing predecessor
    /// and nothing of their author waited before: the time to ask peers for it.
    New { lines: u64, gap: bool },
    /// Not taken, and not to be passed on; the sender is not to blame.
    Refused(Refusal),
}

/// Why a record with a valid signature is not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its author run was forgotten for being quiet the longest, and these lines are
    /// no newer than the last one of it this node had seen.
    Forgotten,
    /// More than [`MAX_AHEAD`] lines past everything seen of its run.
    TooFarAhead,
    /// Another key with the same node id is known already.
    KeyMismatch,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Forgotten => f.write_str(
                "its author was forgotten for being quiet, and these lines are not newer",
            ),
            Refusal::TooFarAhead => write!(
                f,
                "more than {MAX_AHEAD} lines past what was seen of its author"
            ),
            Refusal::KeyMismatch => f.write_str("another key with the same node id is known"),
        }
    }
}

/// Counters for `/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogCounters {
    /// Distinct lines seen: written here or received.
    pub lines: u64,
    /// Copies of lines seen before.
    pub duplicates: u64,
    /// Lines given up on: delivered around, or their gap dropped to keep a bound.
    pub missing: u64,
    /// Records refused (see [`Refusal`]).
    pub refused: u64,
}

/// What one peer is being sent of one author run: the records past `from` that hold
/// a line the peer has not seen.
#[derive(Debug, Clone)]
pub struct Plan {
    pub key: FeedKey,
    from: u64,
    peer: Seen,
}

/// A range of new lines of one record, waiting for its turn.
#[derive(Debug)]
struct Held {
    record: Rc<[u8]>,
    to: u64,
    late: bool,
}

#[derive(Debug)]
struct Feed {
    key: [u8; KEY_LEN],
    seen: Seen,
    /// The run is older than this node: its lines written before the node started are
    /// history, kept but not shown.
    old: bool,
    /// Lines below this have been delivered, given up on, or are history; `None` while
    /// it is not known where the news of an old run begins.
    cursor: Option<u64>,
    /// New lines at or past the cursor that wait for their predecessors, by first line.
    held: BTreeMap<u64, Held>,
    /// When the oldest held lines give up waiting.
    deadline: Option<Instant>,
    /// The backlog's records of this run: first line to (store index, end).
    stored: BTreeMap<u64, (u64, u64)>,
    last_heard: Instant,
    /// The author's clock on the newest line seen.
    newest_ms: u64,
}

/// The per-author logs of one node.
#[derive(Debug)]
pub struct Logs {
    feeds: BTreeMap<FeedKey, Feed>,
    /// Every run but this node's own by when it was last heard of: who is evicted.
    quiet: BTreeSet<(Instant, FeedKey)>,
    /// Runs with held lines, by when they give up waiting.
    waiting: BTreeSet<(Instant, FeedKey)>,
    store: Store,
    own: FeedKey,
    /// This node's start on the Unix clock (milliseconds): older lines of runs older
    /// than this node are history, not news.
    start_ms: u64,
    max_authors: usize,
    /// The newest line of any run forgotten so far (milliseconds on its author's clock).
    forgotten_ms: Option<u64>,
    held_bytes: usize,
    counters: LogCounters,
    new_ranges: Vec<(u64, u64)>,
}

impl Logs {
    /// Logs for a node with key `key` whose run started at `epoch` (nanoseconds since
    /// the Unix epoch), tracking at most `max_authors` runs.
    pub fn new(
        now: Instant,
        key: &[u8; KEY_LEN],
        epoch: u64,
        max_authors: usize,
        limits: StoreLimits,
    ) -> Self {
        let own = FeedKey {
            author: node_id_of(key),
            epoch,
        };
        let mut logs = Logs {
            feeds: BTreeMap::new(),
            quiet: BTreeSet::new(),
            waiting: BTreeSet::new(),
            store: Store::new(limits),
            own,
            start_ms: epoch / 1_000_000,
            max_authors: max_authors.max(1),
            forgotten_ms: None,
            held_bytes: 0,
            counters: LogCounters::default(),
            new_ranges: Vec::new(),
        };
        logs.feeds.insert(own, Feed::new(*key, now, false));
        logs
    }

    /// Whether every line of `record` has been seen, counting it as a copy if so: such
    /// a copy needs no signature check, since it can change nothing.
    pub fn is_copy(&mut self, record: &Record<'_>) -> bool {
        let key = key_of(record);
        let known = self
            .feeds
            .get(&key)
            .is_some_and(|f| f.seen.covers(record.first, record.end()));
        if known {
            self.counters.duplicates += u64::from(record.count);
        }
        known
    }

    /// Keeps a record this node's clients wrote. Its lines are new unless another
    /// process holding this node's key sent lines of this very run first: then they are
    /// taken for copies, as any copy would be.
    pub fn write_own(&mut self, now: Instant, record: &Record<'_>) {
        debug_assert_eq!(key_of(record), self.own);
        self.admit(now, record, false, &mut Vec::new());
    }

    /// Takes a record whose signature holds: marks its lines seen, keeps it in the
    /// backlog, and appends to `out` what the clients are to be shown now.
    pub fn admit(
        &mut self,
        now: Instant,
        record: &Record<'_>,
        late: bool,
        out: &mut Vec<Delivery>,
    ) -> Admission {
        let key = key_of(record);
        if !self.feeds.contains_key(&key) {
            if let Err(refusal) = self.make_room(now, key, record) {
                self.counters.refused += 1;
                return Admission::Refused(refusal);
            }
        }
        let feed = self.feeds.get_mut(&key).expect("made above");
        if &feed.key != record.author {
            self.counters.refused += 1;
            return Admission::Refused(Refusal::KeyMismatch);
        }
        if record.first > feed.seen.high().saturating_add(MAX_AHEAD) {
            self.counters.refused += 1;
            return Admission::Refused(Refusal::TooFarAhead);
        }
        let mut new = std::mem::take(&mut self.new_ranges);
        new.clear();
        self.counters.missing += feed.seen.insert(record.first, record.end(), &mut new);
        let lines: u64 = new.iter().map(|&(a, b)| b - a).sum();
        self.counters.duplicates += u64::from(record.count) - lines;
        if lines == 0 {
            self.new_ranges = new;
            return Admission::Known;
        }
        self.counters.lines += lines;
        let rc: Rc<[u8]> = Rc::from(record.bytes());
        let index = self.store.push(
            now,
            key,
            record.first,
            usize::from(record.count),
            rc.clone(),
        );
        feed.stored.insert(record.first, (index, record.end()));
        if key != self.own {
            self.quiet.remove(&(feed.last_heard, key));
            self.quiet.insert((now, key));
        }
        feed.last_heard = now;
        feed.newest_ms = feed.newest_ms.max(record.newest_ms);

        let mut gap = false;
        if key != self.own {
            let start_ms = self.start_ms;
            if feed.cursor.is_none() {
                feed.cursor = start_of_news(record, &new, start_ms);
            }
            for &(a, b) in &new {
                if let Some(cursor) = feed.cursor.filter(|&c| a < c) {
                    // A gap filled after it was given up on, or history.
                    let to = b.min(cursor);
                    let from = if feed.old {
                        first_news(record, a, to, start_ms)
                    } else {
                        a
                    };
                    if from < to {
                        out.push(delivery(&rc, from, to, true, 0));
                    }
                }
                let mut from = feed.cursor.map_or(a, |c| a.max(c));
                if feed.old {
                    // History is never news, wherever it falls in the run.
                    let news = first_news(record, from, b, start_ms);
                    if feed.cursor == Some(from) {
                        feed.cursor = Some(news);
                    }
                    from = news;
                }
                if b <= from {
                    continue;
                }
                if feed.held.is_empty() && feed.cursor == Some(from) {
                    // The usual case: next in order, nothing waiting. Shown at once.
                    out.push(delivery(&rc, from, b, late, 0));
                    feed.cursor = Some(b);
                    continue;
                }
                let held = Held {
                    record: rc.clone(),
                    to: b,
                    late,
                };
                self.held_bytes += rc.len();
                feed.held.insert(from, held);
            }
            self.held_bytes -= feed.release(out);
            if feed.held.len() > MAX_HELD_PER_AUTHOR || self.held_bytes > MAX_HELD_BYTES {
                self.held_bytes -= feed.give_up(&mut self.counters, out);
            }
            let waiting = !feed.held.is_empty();
            gap = waiting && feed.deadline.is_none();
            let deadline = waiting.then(|| feed.deadline.unwrap_or(now + ORDER_WAIT));
            if deadline != feed.deadline {
                if let Some(old) = feed.deadline {
                    self.waiting.remove(&(old, key));
                }
                if let Some(at) = deadline {
                    self.waiting.insert((at, key));
                }
                feed.deadline = deadline;
            }
        }
        self.new_ranges = new;
        self.evict(now);
        Admission::New { lines, gap }
    }

    /// Delivers the lines whose wait is over at `now`, with word of their gaps.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<Delivery>) {
        while let Some(&(at, key)) = self.waiting.first() {
            if at > now {
                break;
            }
            self.waiting.pop_first();
            let feed = self.feeds.get_mut(&key).expect("waiting runs are known");
            feed.deadline = None;
            self.held_bytes -= feed.give_up(&mut self.counters, out);
        }
        self.evict(now);
    }

    /// When [`Logs::expire`] must run next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.waiting.first().map(|&(at, _)| at)
    }

    /// Per author run, the lines this node has seen: what a peer compares with what
    /// it holds to send this node exactly what it lacks.
    pub fn summary(&self) -> Vec<HaveEntry> {
        self.feeds
            .keys()
            .filter_map(|&key| self.summary_of(key))
            .collect()
    }

    /// The summary entry of one author run: to ask peers for a gap in it.
    /// Whether every line `first..end` of `key` has been seen.
    pub fn holds(&self, key: FeedKey, first: u64, end: u64) -> bool {
        self.feeds
            .get(&key)
            .is_some_and(|feed| feed.seen.covers(first, end))
    }

    pub fn summary_of(&self, key: FeedKey) -> Option<HaveEntry> {
        self.feeds.get(&key).map(|feed| HaveEntry {
            author: key.author.0,
            epoch: key.epoch,
            ranges: feed.seen.ranges().to_vec(),
        })
    }

    /// What to send a peer whose summary is `have` (author run to the lines it has
    /// seen): each run of which this node holds a record with a line the peer has not
    /// seen. When `complete`, a run missing from `have` is one the peer has nothing of.
    pub fn plan(&self, have: &BTreeMap<FeedKey, Seen>, complete: bool) -> VecDeque<Plan> {
        let none = Seen::default();
        let mut plans = VecDeque::new();
        for (&key, feed) in &self.feeds {
            let Some(peer) = have.get(&key).or(complete.then_some(&none)) else {
                continue;
            };
            let (Some((&first, _)), Some((_, &(_, end)))) =
                (feed.stored.first_key_value(), feed.stored.last_key_value())
            else {
                continue;
            };
            // The usual answer, at a glance: the peer has all of it.
            if peer.covers(first, end) {
                continue;
            }
            let lacks = |(&first, &(_, end)): (&u64, &(u64, u64))| !peer.covers(first, end);
            if feed.stored.iter().rev().any(lacks) {
                plans.push_back(Plan {
                    key,
                    from: 0,
                    peer: peer.clone(),
                });
            }
        }
        plans
    }

    /// Questions to a peer whose whole summary is `have`: this node's entry for every
    /// run of which the peer has seen lines this node has not. A summary answers only
    /// what its sender lacks, so without them a node that writes nothing would never be
    /// sent what only its peers have (beyond a hop limit, say).
    pub fn lacking(&self, have: &BTreeMap<FeedKey, Seen>) -> Vec<HaveEntry> {
        let none = Seen::default();
        have.iter()
            .filter(|&(key, _)| *key != self.own)
            .filter(|&(key, peer)| {
                let ours = self.feeds.get(key).map_or(&none, |f| &f.seen);
                peer.ranges().iter().any(|&(a, b)| !ours.covers(a, b))
            })
            .map(|(&key, _)| HaveEntry {
                author: key.author.0,
                epoch: key.epoch,
                ranges: self
                    .feeds
                    .get(&key)
                    .map_or(Vec::new(), |f| f.seen.ranges().to_vec()),
            })
            .collect()
    }

    /// The next record of `plan` the peer lacks, moving the plan past it; `None` once
    /// the plan is done.
    pub fn next_for(&self, plan: &mut Plan) -> Option<Rc<[u8]>> {
        let feed = self.feeds.get(&plan.key)?;
        for (&first, &(index, end)) in feed.stored.range(plan.from..) {
            plan.from = end.max(first + 1);
            if plan.peer.covers(first, end) {
                continue;
            }
            if let Some(record) = self.store.get(index) {
                return Some(record.clone());
            }
        }
        None
    }

    /// Joins `plans` to what a peer is being sent already: a run on its way goes on
    /// from the earlier of the two points, with the newer view of the peer.
    pub fn merge_plans(queue: &mut VecDeque<Plan>, plans: VecDeque<Plan>) {
        if queue.is_empty() {
            *queue = plans;
            return;
        }
        let at: BTreeMap<FeedKey, usize> = (queue.iter().enumerate())
            .map(|(i, plan)| (plan.key, i))
            .collect();
        for plan in plans {
            match at.get(&plan.key) {
                Some(&i) => {
                    queue[i].from = queue[i].from.min(plan.from);
                    queue[i].peer = plan.peer;
                }
                None => queue.push_back(plan),
            }
        }
    }

    /// The newest `n` lines of the backlog by their authors' clocks, oldest first (an
    /// author's own lines in its order): lines caught up after a cut arrive after newer
    /// ones, and take their places by time.
    pub fn history(&self, n: usize) -> Vec<(Rc<[u8]>, u64)> {
        let mut lines: Vec<(u64, u64, Rc<[u8]>, u64)> = Vec::new();
        for (arrival, record) in self.store.newest_first().enumerate() {
            let parsed = Record::parse(record).expect("stored records were valid");
            for line in parsed.lines() {
                lines.push((
                    line.time_ms,
                    u64::MAX - arrival as u64,
                    record.clone(),
                    line.seq,
                ));
            }
        }
        let keep = lines.len().saturating_sub(n);
        if keep > 0 {
            lines.select_nth_unstable_by_key(keep - 1, |l| (l.0, l.1, l.3));
        }
        let mut newest = lines.split_off(keep);
        newest.sort_unstable_by_key(|l| (l.0, l.1, l.3));
        newest
            .into_iter()
            .map(|(_, _, record, seq)| (record, seq))
            .collect()
    }

    pub fn counters(&self) -> LogCounters {
        self.counters
    }

    /// Author runs tracked, this node's own included.
    pub fn authors(&self) -> usize {
        self.feeds.len()
    }

    pub fn backlog_lines(&self) -> usize {
        self.store.lines()
    }

    pub fn backlog_bytes(&self) -> usize {
        self.store.bytes()
    }

    pub fn limits(&self) -> (usize, StoreLimits) {
        (self.max_authors, self.store.limits())
    }

    /// Lines held back for order, in all.
    pub fn held(&self) -> usize {
        self.feeds.values().map(|f| f.held.len()).sum()
    }

    /// Makes a place for a run not known yet, evicting the one quiet the longest when
    /// the table is full.
    fn make_room(
        &mut self,
        now: Instant,
        key: FeedKey,
        record: &Record<'_>,
    ) -> Result<(), Refusal> {
        let newest = record.newest_ms;
        if self
            .forgotten_ms
            .is_some_and(|forgotten| newest <= forgotten)
        {
            return Err(Refusal::Forgotten);
        }
        if self.feeds.len() >= self.max_authors {
            let (_, evicted) = self
                .quiet
                .pop_first()
                .expect("a full table holds other runs");
            let feed = self.feeds.remove(&evicted).expect("quiet runs are known");
            self.forgotten_ms = self.forgotten_ms.max(Some(feed.newest_ms));
            if let Some(at) = feed.deadline {
                self.waiting.remove(&(at, evicted));
            }
            for &(index, _) in feed.stored.values() {
                self.store.forget(index);
            }
            self.held_bytes -= feed.held.values().map(|h| h.record.len()).sum::<usize>();
        }
        let old = key.epoch < self.own.epoch;
        self.feeds.insert(key, Feed::new(*record.author, now, old));
        self.quiet.insert((now, key));
        Ok(())
    }

    fn evict(&mut self, now: Instant) {
        let feeds = &mut self.feeds;
        self.store.evict(now, |key, first| {
            if let Some(feed) = feeds.get_mut(&key) {
                feed.stored.remove(&first);
            }
        });
    }
}

impl Feed {
    fn new(key: [u8; KEY_LEN], now: Instant, old: bool) -> Self {
        Feed {
            key,
            seen: Seen::default(),
            old,
            cursor: (!old).then_some(0),
            held: BTreeMap::new(),
            deadline: None,
            stored: BTreeMap::new(),
            last_heard: now,
            newest_ms: 0,
        }
    }

    /// Delivers the held lines that are next in order; returns the bytes no longer
    /// held.
    fn release(&mut self, out: &mut Vec<Delivery>) -> usize {
        let Some(cursor) = self.cursor.as_mut() else {
            return 0;
        };
        let mut freed = 0;
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() > *cursor {
                break;
            }
            let (from, held) = entry.remove_entry();
            out.push(delivery(&held.record, from, held.to, held.late, 0));
            *cursor = (*cursor).max(held.to);
            freed += held.record.len();
        }
        freed
    }

    /// Delivers every held line at once, telling of each gap before it; returns the
    /// bytes no longer held.
    fn give_up(&mut self, counters: &mut LogCounters, out: &mut Vec<Delivery>) -> usize {
        // Where an old run's news begins was never learnt: at the first line held.
        let first_held = self.held.keys().next().copied().unwrap_or(0);
        let cursor = self.cursor.get_or_insert(first_held);
        let mut freed = 0;
        for (from, held) in std::mem::take(&mut self.held) {
            let missing = from.saturating_sub(*cursor);
            counters.missing += missing;
            out.push(delivery(&held.record, from, held.to, held.late, missing));
            *cursor = (*cursor).max(held.to);
            freed += held.record.len();
        }
        freed
    }
}

fn delivery(record: &Rc<[u8]>, from: u64, to: u64, late: bool, missing: u64) -> Delivery {
    Delivery {
        record: record.clone(),
        from,
        to,
        late,
        missing,
    }
}

fn key_of(record: &Record<'_>) -> FeedKey {
    FeedKey {
        author: node_id_of(record.author),
        epoch: record.epoch,
    }
}

/// Where the news of an old run begins, if these new lines of it tell: after the last
/// one written before this node started, or at the run's first line.
fn start_of_news(record: &Record<'_>, new: &[(u64, u64)], start_ms: u64) -> Option<u64> {
    let is_new = |seq: u64| new.iter().any(|&(a, b)| a <= seq && seq < b);
    let last_history = (record.lines())
        .filter(|l| l.time_ms < start_ms && is_new(l.seq))
        .map(|l| l.seq)
        .last();
    match last_history {
        Some(seq) => Some(seq + 1),
        None => (new.first()?.0 == 0).then_some(0),
    }
}

/// The first line in `from..to` of `record` written since `start_ms`, or `to`.
fn first_news(record: &Record<'_>, from: u64, to: u64, start_ms: u64) -> u64 {
    // The usual case, without reading the lines: all of the batch is news.
    if record.oldest_ms >= start_ms {
        return from;
    }
    (record.lines())
        .filter(|l| (from..to).contains(&l.seq))
        .find(|l| l.time_ms >= start_ms)
        .map_or(to, |l| l.seq)
}

#[cfg(test)]
mod tests;
