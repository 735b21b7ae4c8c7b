//! The duplicate-suppression ring: the most recent message ids, in a fixed-capacity ring
//! with a hash index beside it. A check-and-insert costs O(1); memory is bounded by the
//! capacity and grows only as ids arrive.
//!
//! The index hashes with a keyed mix so that a peer cannot choose ids that collide
//! without knowing the node's seed. It is a cheap keyed hash, not a cryptographic one.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};

use super::ids::MessageId;

/// Recently seen message ids; the oldest is forgotten once `capacity` are held.
#[derive(Debug)]
pub struct DedupRing {
    /// Ids in arrival order, wrapping at `capacity`.
    ring: Vec<MessageId>,
    /// The slot of the oldest id once the ring is full.
    oldest: usize,
    capacity: usize,
    index: HashSet<MessageId, SeededState>,
}

impl DedupRing {
    /// A ring remembering `capacity` ids (at least one), hashing with `seed`.
    pub fn new(capacity: usize, seed: u64) -> Self {
        DedupRing {
            ring: Vec::new(),
            oldest: 0,
            capacity: capacity.max(1),
            index: HashSet::with_hasher(SeededState(seed)),
        }
    }

    /// Records `id`; returns false if it is held already (a duplicate).
    pub fn insert(&mut self, id: MessageId) -> bool {
        if !self.index.insert(id) {
            return false;
        }
        if self.ring.len() < self.capacity {
            self.ring.push(id);
        } else {
            let evicted = std::mem::replace(&mut self.ring[self.oldest], id);
            self.index.remove(&evicted);
            self.oldest = (self.oldest + 1) % self.capacity;
        }
        true
    }

    /// Whether `id` is held.
    pub fn contains(&self, id: &MessageId) -> bool {
        self.index.contains(id)
    }

    /// How many ids are held.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether no id is held.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// How many ids it holds at the most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[derive(Debug, Clone)]
struct SeededState(u64);

impl BuildHasher for SeededState {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(self.0)
    }
}

/// Folds 64-bit words into a seeded state by multiply-rotate; message ids hash as two
/// words, so this is a handful of instructions.
struct IdHasher(u64);

const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(MIX).rotate_left(26);
    }

    fn finish(&self) -> u64 {
        // A final avalanche so that both the low bits (bucket) and the high bits (tag)
        // depend on every input bit.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ids::NodeId;

    fn id(origin: u64, seq: u64) -> MessageId {
        MessageId {
            origin: NodeId(origin),
            seq,
        }
    }

    #[test]
    fn second_sighting_is_a_duplicate() {
        let mut ring = DedupRing::new(4, 1);
        assert!(ring.insert(id(1, 1)));
        assert!(!ring.insert(id(1, 1)));
        assert!(ring.insert(id(2, 1)), "same seq, other origin");
        assert!(ring.insert(id(1, 2)), "same origin, other seq");
        assert_eq!(ring.len(), 3);
    }

    #[test]
    fn oldest_is_evicted_at_capacity() {
        let mut ring = DedupRing::new(3, 7);
        for seq in 0..3 {
            assert!(ring.insert(id(9, seq)));
        }
        assert!(ring.insert(id(9, 3)));
        assert!(!ring.contains(&id(9, 0)), "the oldest went");
        for seq in 1..=3 {
            assert!(ring.contains(&id(9, seq)));
        }
        assert_eq!(ring.len(), 3);
        assert!(ring.insert(id(9, 0)), "a forgotten id is new again");
        assert!(!ring.contains(&id(9, 1)));
    }

    #[test]
    fn memory_stays_at_capacity_over_many_ids() {
        let mut ring = DedupRing::new(1000, 3);
        for seq in 0..100_000 {
            assert!(ring.insert(id(seq % 7, seq)));
        }
        assert_eq!(ring.len(), 1000);
        assert_eq!(ring.index.len(), 1000);
        for seq in 99_000..100_000 {
            assert!(ring.contains(&id(seq % 7, seq)));
        }
        assert!(!ring.contains(&id(98_999 % 7, 98_999)));
    }

    #[test]
    fn capacity_zero_means_one() {
        let mut ring = DedupRing::new(0, 0);
        assert_eq!(ring.capacity(), 1);
        assert!(ring.insert(id(1, 1)));
        assert!(!ring.insert(id(1, 1)));
        assert!(ring.insert(id(1, 2)));
        assert!(ring.insert(id(1, 1)));
    }

    #[test]
    fn seeds_change_the_hash() {
        let hash = |seed| SeededState(seed).hash_one(id(5, 6));
        assert_ne!(hash(1), hash(2));
        assert_eq!(hash(1), hash(1));
    }
}
