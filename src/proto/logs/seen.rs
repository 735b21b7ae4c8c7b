//! Which sequence numbers of one author's run have been seen: a short sorted list of
//! ranges, the anti-replay window of this protocol.
//!
//! An author numbers its lines one by one and they mostly arrive in order, so the list
//! is one range whose end moves on, and a check is a comparison with its end. Lines
//! that arrive out of order, or after a gap, open more ranges; the list is bounded,
//! and when it would grow past its bound the oldest gap is given up: its lines count
//! as seen from then on, and as missing.

/// Most ranges kept per author run.
pub const MAX_RANGES: usize = 32;

/// Seen sequence numbers, as sorted, disjoint, non-touching half-open ranges.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    ranges: Vec<(u64, u64)>,
}

impl Seen {
    /// Whether every number in `first..end` has been seen.
    pub fn covers(&self, first: u64, end: u64) -> bool {
        // The busy case: in order, at or behind the newest range's end.
        match self.ranges.last() {
            Some(&(start, stop)) if start <= first => end <= stop,
            _ => self
                .ranges
                .iter()
                .any(|&(start, stop)| start <= first && end <= stop),
        }
    }

    /// Marks `first..end` seen and appends the parts that were not to `new`, in order.
    /// Returns how many numbers a gap given up to keep the bound held.
    pub fn insert(&mut self, first: u64, end: u64, new: &mut Vec<(u64, u64)>) -> u64 {
        if let Some(last) = self.ranges.last_mut() {
            if last.1 == first || (last.0 <= first && first <= last.1 && last.1 < end) {
                new.push((last.1, end));
                last.1 = end;
                return 0;
            }
        }
        let mut at = first;
        for &(start, stop) in &self.ranges {
            if stop <= at {
                continue;
            }
            if start >= end {
                break;
            }
            if at < start {
                new.push((at, start));
            }
            at = at.max(stop);
        }
        if at < end {
            new.push((at, end));
        }
        self.ranges.push((first, end));
        self.ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.ranges.len());
        for &(start, stop) in &self.ranges {
            match merged.last_mut() {
                Some(prev) if start <= prev.1 => prev.1 = prev.1.max(stop),
                _ => merged.push((start, stop)),
            }
        }
        self.ranges = merged;
        let mut given_up = 0;
        while self.ranges.len() > MAX_RANGES {
            let (start, stop) = self.ranges.remove(1);
            given_up += start - self.ranges[0].1;
            self.ranges[0].1 = stop;
        }
        given_up
    }

    /// The number below which everything from the first seen one on has been seen:
    /// what a catch-up summary asks to be sent from.
    pub fn next(&self) -> u64 {
        self.ranges.first().map_or(0, |&(_, stop)| stop)
    }

    /// One past the highest number seen.
    pub fn high(&self) -> u64 {
        self.ranges.last().map_or(0, |&(_, stop)| stop)
    }

    /// The ranges, in order.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// Seen numbers as another node says: ranges it sent, which are checked to be
    /// sorted, disjoint and non-empty (`wire::lines::Have`).
    pub fn from_ranges(ranges: Vec<(u64, u64)>) -> Self {
        Seen { ranges }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(seen: &mut Seen, first: u64, end: u64) -> Vec<(u64, u64)> {
        let mut new = Vec::new();
        seen.insert(first, end, &mut new);
        new
    }

    #[test]
    fn in_order_lines_extend_one_range() {
        let mut seen = Seen::default();
        assert_eq!(insert(&mut seen, 0, 3), [(0, 3)]);
        assert_eq!(insert(&mut seen, 3, 5), [(3, 5)]);
        assert!(seen.covers(0, 5) && seen.covers(4, 5));
        assert!(!seen.covers(4, 6) && !seen.covers(5, 6));
        assert_eq!((seen.ranges().len(), seen.next(), seen.high()), (1, 5, 5));
    }

    #[test]
    fn a_gap_is_remembered_and_filled_later() {
        let mut seen = Seen::default();
        insert(&mut seen, 0, 2);
        assert_eq!(insert(&mut seen, 5, 7), [(5, 7)]);
        assert_eq!((seen.ranges().len(), seen.next(), seen.high()), (2, 2, 7));
        assert!(!seen.covers(2, 3));
        assert_eq!(insert(&mut seen, 2, 5), [(2, 5)]);
        assert_eq!((seen.ranges().len(), seen.next()), (1, 7));
        assert!(insert(&mut seen, 3, 4).is_empty(), "old copies are known");
    }

    #[test]
    fn overlapping_copies_yield_only_their_new_part() {
        let mut seen = Seen::default();
        insert(&mut seen, 0, 2);
        insert(&mut seen, 4, 6);
        assert_eq!(insert(&mut seen, 1, 8), [(2, 4), (6, 8)]);
        assert_eq!((seen.ranges().len(), seen.next()), (1, 8));
    }

    #[test]
    fn the_bound_gives_up_the_oldest_gap() {
        let mut seen = Seen::default();
        for i in 0..MAX_RANGES as u64 {
            insert(&mut seen, i * 10, i * 10 + 1);
        }
        assert_eq!(seen.ranges().len(), MAX_RANGES);
        let mut new = Vec::new();
        let given_up = seen.insert(1000, 1001, &mut new);
        assert_eq!(given_up, 9, "the gap 1..10");
        assert_eq!(seen.ranges().len(), MAX_RANGES);
        assert_eq!(seen.next(), 11);
        assert!(seen.covers(5, 6), "given up counts as seen");
    }
}
