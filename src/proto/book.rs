//! The address book: where other nodes accept peers, as learned from links and peer
//! exchange. Bounded in size, and no peer can fill it for good: a full book makes room
//! for a new address by forgetting the one that failed most, else the oldest. An
//! address that fails to link a few times in a row is forgotten, and one that led back
//! to this node is not learned again while it is among the last few such.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;

/// Dials in a row that may fail before a learned address is forgotten.
pub const MAX_FAILURES: u32 = 3;

/// Addresses remembered as this node's own: a node has few, and a peer that hands out
/// addresses leading back here must not grow the set without bound.
pub const MAX_SELVES: usize = 64;

/// Which entry a full book forgets first: the most failures, then the oldest.
type Rank = (Reverse<u32>, u64, SocketAddr);

/// Addresses of other nodes; iteration is in address order, so what is dialled depends
/// only on what was learned and on the node's seed.
#[derive(Debug)]
pub struct AddressBook {
    /// Each address with its failures in a row and when it was learned.
    known: BTreeMap<SocketAddr, (u32, u64)>,
    /// The same entries in the order a full book forgets them.
    eviction: BTreeSet<Rank>,
    /// Counts addresses learned: their age.
    learned: u64,
    /// Addresses that turned out to be this node's own, the oldest first.
    selves: VecDeque<SocketAddr>,
    capacity: usize,
}

impl AddressBook {
    pub fn new(capacity: usize) -> Self {
        AddressBook {
            known: BTreeMap::new(),
            eviction: BTreeSet::new(),
            learned: 0,
            selves: VecDeque::new(),
            capacity,
        }
    }

    /// Records `addr` as a place a node accepts peers, forgetting another if the book is
    /// full; false if it was known already, is this node's own or cannot be dialled.
    pub fn learn(&mut self, addr: SocketAddr) -> bool {
        let dialable = !addr.ip().is_unspecified() && addr.port() != 0;
        if !dialable || self.selves.contains(&addr) || self.known.contains_key(&addr) {
            return false;
        }
        if self.known.len() >= self.capacity {
            let Some((_, _, first)) = self.eviction.first().copied() else {
                return false;
            };
            self.forget(first);
        }
        self.learned += 1;
        self.known.insert(addr, (0, self.learned));
        self.eviction.insert((Reverse(0), self.learned, addr));
        true
    }

    /// A link to `addr` came up: its failures are forgiven.
    pub fn succeeded(&mut self, addr: SocketAddr) {
        self.set_failures(addr, |_| 0);
    }

    /// A dial of `addr` failed; after [`MAX_FAILURES`] in a row it is forgotten.
    pub fn failed(&mut self, addr: SocketAddr) {
        if self.set_failures(addr, |f| f + 1) >= Some(MAX_FAILURES) {
            self.forget(addr);
        }
    }

    /// `addr` led back to this node: forget it and do not learn it again.
    pub fn is_self(&mut self, addr: SocketAddr) {
        self.forget(addr);
        if !self.selves.contains(&addr) {
            if self.selves.len() >= MAX_SELVES {
                self.selves.pop_front();
            }
            self.selves.push_back(addr);
        }
    }

    /// Updates the failures of a known address and returns them.
    fn set_failures(&mut self, addr: SocketAddr, f: impl FnOnce(u32) -> u32) -> Option<u32> {
        let (failures, learned) = self.known.get_mut(&addr)?;
        self.eviction.remove(&(Reverse(*failures), *learned, addr));
        *failures = f(*failures);
        self.eviction.insert((Reverse(*failures), *learned, addr));
        Some(*failures)
    }

    fn forget(&mut self, addr: SocketAddr) {
        if let Some((failures, learned)) = self.known.remove(&addr) {
            self.eviction.remove(&(Reverse(failures), learned, addr));
        }
    }

    /// Every known address, in order.
    pub fn addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.known.keys().copied()
    }

    pub fn len(&self) -> usize {
        self.known.len()
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn learns_each_dialable_address_once() {
        let mut book = AddressBook::new(2);
        assert!(book.learn(addr(1)));
        assert!(!book.learn(addr(1)));
        assert!(!book.learn(SocketAddr::from(([0, 0, 0, 0], 7))));
        assert!(!book.learn(addr(0)));
        assert!(book.learn(addr(2)));
        assert_eq!(book.addrs().collect::<Vec<_>>(), [addr(1), addr(2)]);
    }

    #[test]
    fn a_full_book_forgets_the_most_failing_then_the_oldest() {
        let mut book = AddressBook::new(3);
        for port in 1..=3 {
            book.learn(addr(port));
        }
        book.failed(addr(2));
        assert!(book.learn(addr(4)), "room made");
        assert_eq!(
            book.addrs().collect::<Vec<_>>(),
            [addr(1), addr(3), addr(4)]
        );
        assert!(book.learn(addr(5)));
        assert_eq!(
            book.addrs().collect::<Vec<_>>(),
            [addr(3), addr(4), addr(5)]
        );
        assert_eq!(book.eviction.len(), book.len(), "the index stays in step");
    }

    #[test]
    fn its_own_addresses_are_bounded() {
        let mut book = AddressBook::new(8);
        for port in 1..=(MAX_SELVES as u16 + 10) {
            book.is_self(addr(port));
        }
        assert_eq!(book.selves.len(), MAX_SELVES);
        assert!(book.learn(addr(1)), "the oldest own address was let go");
        assert!(!book.learn(addr(MAX_SELVES as u16 + 10)));
    }

    #[test]
    fn forgets_an_address_that_keeps_failing() {
        let mut book = AddressBook::new(8);
        book.learn(addr(1));
        book.failed(addr(1));
        book.failed(addr(1));
        book.succeeded(addr(1));
        book.failed(addr(1));
        book.failed(addr(1));
        assert_eq!(book.len(), 1, "a success forgives");
        book.failed(addr(1));
        assert!(book.is_empty());
    }

    #[test]
    fn never_keeps_its_own_address() {
        let mut book = AddressBook::new(8);
        book.learn(addr(1));
        book.is_self(addr(1));
        assert!(book.is_empty());
        assert!(!book.learn(addr(1)));
    }
}
