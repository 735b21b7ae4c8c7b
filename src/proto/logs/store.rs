//! The backlog: the records this node holds to catch peers up and to answer `/history`,
//! in the order they arrived, within bounds of lines, bytes and age. The oldest arrival
//! goes first; each author run's index into it lives with the run (`Feed::stored`).

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use super::FeedKey;
pub use crate::config::BacklogLimits as StoreLimits;

#[derive(Debug)]
struct Entry {
    feed: FeedKey,
    first: u64,
    lines: usize,
    at: Instant,
    /// `None` once its author run has been forgotten.
    record: Option<Rc<[u8]>>,
}

/// Records by arrival; an entry's index counts every record ever pushed, so that it
/// stays valid while older entries leave.
#[derive(Debug)]
pub struct Store {
    entries: VecDeque<Entry>,
    /// The index of `entries[0]`.
    base: u64,
    lines: usize,
    bytes: usize,
    limits: StoreLimits,
}

impl Store {
    pub fn new(limits: StoreLimits) -> Self {
        Store {
            entries: VecDeque::new(),
            base: 0,
            lines: 0,
            bytes: 0,
            limits,
        }
    }

    /// Keeps a record of `lines` lines of `feed` from `first`; returns its index.
    pub fn push(
        &mut self,
        now: Instant,
        feed: FeedKey,
        first: u64,
        lines: usize,
        record: Rc<[u8]>,
    ) -> u64 {
        self.lines += lines;
        self.bytes += record.len();
        self.entries.push_back(Entry {
            feed,
            first,
            lines,
            at: now,
            record: Some(record),
        });
        self.base + self.entries.len() as u64 - 1
    }

    /// The record at `index`, unless it has left.
    pub fn get(&self, index: u64) -> Option<&Rc<[u8]>> {
        let at = usize::try_from(index.checked_sub(self.base)?).ok()?;
        self.entries.get(at)?.record.as_ref()
    }

    /// Drops the record at `index` (its author run is forgotten); its place stays until
    /// it is the oldest.
    pub fn forget(&mut self, index: u64) {
        let Some(at) = index
            .checked_sub(self.base)
            .and_then(|i| usize::try_from(i).ok())
        else {
            return;
        };
        if let Some(entry) = self.entries.get_mut(at) {
            if let Some(record) = entry.record.take() {
                self.lines -= entry.lines;
                self.bytes -= record.len();
            }
        }
    }

    /// Removes the oldest records while the backlog is over a bound, telling `left`
    /// which (author run, first line) each was.
    pub fn evict(&mut self, now: Instant, mut left: impl FnMut(FeedKey, u64)) {
        while let Some(entry) = self.entries.front() {
            let over = self.lines > self.limits.lines
                || self.bytes > self.limits.bytes
                || now.saturating_duration_since(entry.at) > self.limits.age
                || entry.record.is_none();
            if !over {
                break;
            }
            let entry = self.entries.pop_front().expect("looked at the front");
            self.base += 1;
            if let Some(record) = entry.record {
                self.lines -= entry.lines;
                self.bytes -= record.len();
                left(entry.feed, entry.first);
            }
        }
    }

    /// The records held, newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &Rc<[u8]>> {
        self.entries.iter().rev().filter_map(|e| e.record.as_ref())
    }

    pub fn lines(&self) -> usize {
        self.lines
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn limits(&self) -> StoreLimits {
        self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::NodeId;
    use std::time::Duration;

    const FEED: FeedKey = FeedKey {
        author: NodeId(1),
        epoch: 2,
    };

    fn store(lines: usize, bytes: usize) -> Store {
        Store::new(StoreLimits {
            lines,
            bytes,
            age: Duration::from_secs(60),
        })
    }

    #[test]
    fn the_oldest_leave_first_at_each_bound() {
        let now = Instant::now();
        let mut s = store(5, 1000);
        let a = s.push(now, FEED, 0, 3, Rc::from(&[0u8; 10][..]));
        let b = s.push(now, FEED, 3, 3, Rc::from(&[0u8; 10][..]));
        let mut left = Vec::new();
        s.evict(now, |_, first| left.push(first));
        assert_eq!(left, [0], "6 lines over a bound of 5");
        assert!(s.get(a).is_none() && s.get(b).is_some());
        assert_eq!((s.lines(), s.bytes()), (3, 10));

        let mut s = store(100, 25);
        for first in 0..3 {
            s.push(now, FEED, first, 1, Rc::from(&[0u8; 10][..]));
        }
        s.evict(now, |_, _| {});
        assert_eq!(s.bytes(), 20);

        let later = now + Duration::from_secs(61);
        s.evict(later, |_, _| {});
        assert_eq!((s.lines(), s.bytes()), (0, 0), "too old");
    }

    #[test]
    fn forgotten_records_stop_counting_at_once() {
        let now = Instant::now();
        let mut s = store(100, 1000);
        let a = s.push(now, FEED, 0, 4, Rc::from(&[0u8; 10][..]));
        let b = s.push(now, FEED, 4, 1, Rc::from(&[1u8; 7][..]));
        s.forget(a);
        assert_eq!((s.lines(), s.bytes()), (1, 7));
        let mut left = Vec::new();
        s.evict(now, |_, first| left.push(first));
        assert!(left.is_empty(), "a forgotten record is not reported again");
        assert_eq!(s.get(b).map(|r| r.len()), Some(7));
        assert_eq!(s.newest_first().count(), 1);
    }
}
