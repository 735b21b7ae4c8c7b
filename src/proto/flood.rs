//! Flooding policy: the ids of lines this node writes, which arriving copies are new and
//! which are duplicates, and how far a copy may still travel.

use super::dedup::DedupRing;
use super::ids::{MessageId, NodeId};

/// Message ids and the counters `/status` reports.
#[derive(Debug)]
pub struct Flood {
    seen: DedupRing,
    /// This run's epoch: with the sequence, what makes the ids of this node's lines new
    /// in every run.
    epoch: u64,
    next_seq: u64,
    /// Distinct chat lines seen: written here or received.
    pub messages: u64,
    /// Copies dropped because their id was seen already.
    pub duplicates: u64,
}

impl Flood {
    pub fn new(dedup_capacity: usize, hash_seed: u64, epoch: u64) -> Self {
        Flood {
            seen: DedupRing::new(dedup_capacity, hash_seed),
            epoch,
            next_seq: 0,
            messages: 0,
            duplicates: 0,
        }
    }

    /// A fresh id for a line written by a local client of `me`, already marked seen so
    /// that copies coming back around a cycle are suppressed.
    pub fn originate(&mut self, me: NodeId) -> MessageId {
        let id = MessageId {
            origin: me,
            epoch: self.epoch,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        self.seen.insert(id);
        self.messages += 1;
        id
    }

    /// Whether a copy that arrived from a peer is the first of its line.
    pub fn admit(&mut self, id: MessageId) -> bool {
        let new = self.seen.insert(id);
        if new {
            self.messages += 1;
        } else {
            self.duplicates += 1;
        }
        new
    }

    /// The hop count to forward a copy with, or `None` when it has used up its hops.
    pub fn next_hops(hops: u8) -> Option<u8> {
        hops.checked_sub(1).filter(|&left| left > 0)
    }

    pub fn dedup_capacity(&self) -> usize {
        self.seen.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_lines_are_never_admitted_again() {
        let mut flood = Flood::new(16, 0, 0);
        let me = NodeId(1);
        let first = flood.originate(me);
        let second = flood.originate(me);
        assert_ne!(first, second);
        assert!(!flood.admit(first));
        assert_eq!((flood.messages, flood.duplicates), (2, 1));
    }

    #[test]
    fn counts_new_lines_and_duplicates() {
        let mut flood = Flood::new(16, 0, 0);
        let id = MessageId {
            origin: NodeId(9),
            epoch: 0,
            seq: 0,
        };
        assert!(flood.admit(id));
        assert!(!flood.admit(id));
        assert!(!flood.admit(id));
        assert_eq!((flood.messages, flood.duplicates), (1, 2));
    }

    #[test]
    fn hop_limit_runs_out() {
        assert_eq!(Flood::next_hops(3), Some(2));
        assert_eq!(Flood::next_hops(2), Some(1));
        assert_eq!(Flood::next_hops(1), None);
        assert_eq!(Flood::next_hops(0), None);
    }
}
