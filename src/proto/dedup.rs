//! The duplicate-suppression ring: the most recent message ids, in a fixed-capacity ring
//! with a hash index beside it. A check-and-insert costs O(1) and touches about two
//! cache lines; memory is fixed by the capacity (8 bytes in the ring and at most 16 in
//! the index per id) and is only paged in as ids arrive.
//!
//! Ids are stored as 64-bit keyed fingerprints, half the size of an id. Two ids share a
//! fingerprint with odds of about one in 2^64 / capacity per check; the key (the node's
//! seed) keeps a peer from choosing ids that collide, or that crowd one part of the
//! index. The mix is fast, not cryptographic.

use crate::config::MAX_DEDUP_CAPACITY;

use super::ids::MessageId;

/// Recently seen message ids; the oldest is forgotten once `capacity` are held.
#[derive(Debug)]
pub struct DedupRing {
    /// Fingerprints in arrival order, wrapping at `capacity`.
    ring: Vec<u64>,
    /// The slot of the oldest fingerprint once the ring is full.
    oldest: usize,
    capacity: usize,
    index: Index,
    key: u64,
}

impl DedupRing {
    /// A ring remembering `capacity` ids (at least one, at most
    /// [`MAX_DEDUP_CAPACITY`]), keyed with `seed`.
    pub fn new(capacity: usize, seed: u64) -> Self {
        let capacity = capacity.clamp(1, MAX_DEDUP_CAPACITY);
        DedupRing {
            ring: Vec::new(),
            oldest: 0,
            capacity,
            index: Index::new(capacity),
            key: seed,
        }
    }

    /// Records `id`; returns false if it is held already (a duplicate).
    pub fn insert(&mut self, id: MessageId) -> bool {
        let print = self.fingerprint(&id);
        if !self.index.insert(print) {
            return false;
        }
        if self.ring.len() < self.capacity {
            self.ring.push(print);
        } else {
            let evicted = std::mem::replace(&mut self.ring[self.oldest], print);
            self.index.remove(evicted);
            self.oldest += 1;
            if self.oldest == self.capacity {
                self.oldest = 0;
            }
        }
        true
    }

    /// Whether `id` is held.
    pub fn contains(&self, id: &MessageId) -> bool {
        self.index.contains(self.fingerprint(id))
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

    /// A keyed 64-bit digest of `id`, never 0 (the index's empty mark).
    fn fingerprint(&self, id: &MessageId) -> u64 {
        let print = mix(mix(mix(id.origin.0 ^ self.key) ^ id.epoch) ^ id.seq);
        print.max(1)
    }
}

/// A bijective avalanche of 64 bits (the finaliser of SplitMix64): every output bit
/// depends on every input bit.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// An open-addressing set of non-zero fingerprints with linear probing, at most half
/// full, so probes stay short and neighbours share cache lines. Deletion shifts the
/// following entries back instead of leaving tombstones, so a long-lived index never
/// degrades. Allocated at its full size on first use.
#[derive(Debug)]
struct Index {
    slots: Vec<u64>,
    mask: usize,
}

impl Index {
    fn new(capacity: usize) -> Self {
        // At least twice the capacity, and more than capacity + 1 (held while an insert
        // waits for its eviction): a probe always meets an empty slot.
        let size = (capacity * 2).max(4).next_power_of_two();
        Index {
            slots: Vec::new(),
            mask: size - 1,
        }
    }

    fn home(&self, print: u64) -> usize {
        print as usize & self.mask
    }

    fn contains(&self, print: u64) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        let mut i = self.home(print);
        loop {
            match self.slots[i] {
                0 => return false,
                held if held == print => return true,
                _ => i = (i + 1) & self.mask,
            }
        }
    }

    /// Adds `print`; false if it was there already.
    fn insert(&mut self, print: u64) -> bool {
        if self.slots.is_empty() {
            // Zeroed memory comes from the kernel untouched, so an idle node pays
            // nothing for the size.
            self.slots = vec![0; self.mask + 1];
        }
        let mut i = self.home(print);
        loop {
            match self.slots[i] {
                0 => {
                    self.slots[i] = print;
                    return true;
                }
                held if held == print => return false,
                _ => i = (i + 1) & self.mask,
            }
        }
    }

    fn remove(&mut self, print: u64) {
        let mut hole = self.home(print);
        while self.slots[hole] != print {
            debug_assert_ne!(self.slots[hole], 0, "removing a fingerprint not held");
            hole = (hole + 1) & self.mask;
        }
        // Move back every later entry of the run that may sit no earlier than its home.
        let mut next = hole;
        loop {
            next = (next + 1) & self.mask;
            let held = self.slots[next];
            if held == 0 {
                break;
            }
            let home = self.home(held);
            let home_reached = if hole <= next {
                home <= hole || home > next
            } else {
                home <= hole && home > next
            };
            if home_reached {
                self.slots[hole] = held;
                hole = next;
            }
        }
        self.slots[hole] = 0;
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.iter().filter(|&&s| s != 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ids::NodeId;

    fn id(origin: u64, seq: u64) -> MessageId {
        MessageId {
            origin: NodeId(origin),
            epoch: 0,
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
        assert_eq!(ring.index.slots.len(), 2048);
        for seq in 99_000..100_000 {
            assert!(ring.contains(&id(seq % 7, seq)));
        }
        assert!(!ring.contains(&id(98_999 % 7, 98_999)));
    }

    #[test]
    fn index_survives_crowded_runs_and_wrap_around() {
        // A tiny index where every probe run is long and wraps past the last slot:
        // removals must keep every remaining entry reachable.
        let mut index = Index::new(4);
        let prints: Vec<u64> = (0..8).map(|i| 6 + 8 * i).collect();
        for &p in &prints[..4] {
            assert!(index.insert(p));
        }
        for (round, &p) in prints[4..].iter().enumerate() {
            index.remove(prints[round]);
            assert!(index.insert(p));
            for &held in &prints[round + 1..round + 5] {
                assert!(index.contains(held), "{held} lost in round {round}");
            }
            assert!(!index.contains(prints[round]));
        }
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
    fn seeds_change_the_fingerprint() {
        let print = |seed| DedupRing::new(1, seed).fingerprint(&id(5, 6));
        assert_ne!(print(1), print(2));
        assert_eq!(print(1), print(1));
    }

    #[test]
    fn idle_ring_allocates_nothing() {
        let ring = DedupRing::new(1 << 20, 0);
        assert_eq!(ring.index.slots.capacity(), 0);
        assert_eq!(ring.ring.capacity(), 0);
    }
}
