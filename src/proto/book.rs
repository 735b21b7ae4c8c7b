//! The address book: where other nodes accept peers, as learned from links and peer
//! exchange. Bounded in size, and no peer can fill it: each entry remembers the peer
//! that told it, and one peer's entries are at most a sixteenth of the book, so a
//! hostile peer cannot make the node dial mostly addresses of its choosing (an
//! eclipse). A full book makes room for a new address by forgetting the one that failed
//! most, else the oldest. An address that fails to link a few times in a row is
//! forgotten, and one that led back to this node is not learned again while it is
//! among the last few such.

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::proto::ids::NodeId;

/// Dials in a row that may fail before a learned address is forgotten.
pub const MAX_FAILURES: u32 = 3;

/// Addresses remembered as this node's own: a node has few, and a peer that hands out
/// addresses leading back here must not grow the set without bound.
pub const MAX_SELVES: usize = 64;

/// The share of the book one peer's word may fill: its capacity divided by this.
const SHARE_OF_ONE_PEER: usize = 16;

/// Addresses of other nodes; iteration is in address order, so what is dialled depends
/// only on what was learned and on the node's seed.
///
/// The entries are one array sorted by address, and the eviction order and the shares
/// are found by going through it: every node of a large mesh keeps a full book, and
/// a map and an ordered index beside it took three times the memory of the entries,
/// while a pass over a few hundred entries costs less than the message that asks for it.
#[derive(Debug)]
pub struct AddressBook {
    /// Each address with its failures in a row, when it was learned, and from whom.
    known: Vec<Entry>,
    /// Counts addresses learned: their age.
    learned: u64,
    /// Addresses that turned out to be this node's own, the oldest first.
    selves: VecDeque<SocketAddr>,
    capacity: usize,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    addr: SocketAddr,
    failures: u32,
    learned: u64,
    from: NodeId,
}

impl Entry {
    /// Which entry a full book forgets first, the least of these: the most failures,
    /// then the oldest.
    fn rank(&self) -> (Reverse<u32>, u64) {
        (Reverse(self.failures), self.learned)
    }
}

impl AddressBook {
    pub fn new(capacity: usize) -> Self {
        AddressBook {
            known: Vec::new(),
            learned: 0,
            selves: VecDeque::new(),
            capacity,
        }
    }

    /// Records `addr`, which peer `from` told of (or is at), as a place a node accepts
    /// peers, forgetting another if the book is full; false if it was known already, is
    /// this node's own, cannot be dialled, or `from` has filled its share of the book.
    pub fn learn(&mut self, addr: SocketAddr, from: NodeId) -> bool {
        let dialable = !addr.ip().is_unspecified() && addr.port() != 0;
        if !dialable || self.selves.contains(&addr) || self.find(addr).is_ok() {
            return false;
        }
        let told = self.known.iter().filter(|e| e.from == from).count();
        if told >= (self.capacity / SHARE_OF_ONE_PEER).max(1) {
            return false;
        }
        if self.known.len() >= self.capacity {
            let Some(first) = self.known.iter().min_by_key(|e| e.rank()) else {
                return false;
            };
            self.forget(first.addr);
        }
        self.learned += 1;
        let entry = Entry {
            addr,
            failures: 0,
            learned: self.learned,
            from,
        };
        let at = self.find(addr).unwrap_err();
        self.known.insert(at, entry);
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

    /// Where `addr` is in the array, or where it would go.
    fn find(&self, addr: SocketAddr) -> Result<usize, usize> {
        self.known.binary_search_by_key(&addr, |e| e.addr)
    }

    /// Updates the failures of a known address and returns them.
    fn set_failures(&mut self, addr: SocketAddr, f: impl FnOnce(u32) -> u32) -> Option<u32> {
        let at = self.find(addr).ok()?;
        let entry = &mut self.known[at];
        entry.failures = f(entry.failures);
        Some(entry.failures)
    }

    fn forget(&mut self, addr: SocketAddr) {
        if let Ok(at) = self.find(addr) {
            self.known.remove(at);
        }
    }

    /// Every known address, in order.
    pub fn addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.known.iter().map(|e| e.addr)
    }

    pub fn len(&self) -> usize {
        self.known.len()
    }

    /// Whether `addr` turned out to lead back to this node.
    pub fn is_own(&self, addr: SocketAddr) -> bool {
        self.selves.contains(&addr)
    }

    pub fn is_empty(&self) -> bool {
        self.known.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: NodeId = NodeId(1);

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn learns_each_dialable_address_once() {
        let mut book = AddressBook::new(2);
        assert!(book.learn(addr(1), NodeId(1)));
        assert!(!book.learn(addr(1), NodeId(1)));
        assert!(!book.learn(SocketAddr::from(([0, 0, 0, 0], 7)), PEER));
        assert!(!book.learn(addr(0), NodeId(0)));
        assert!(book.learn(addr(2), NodeId(2)));
        assert_eq!(book.addrs().collect::<Vec<_>>(), [addr(1), addr(2)]);
    }

    #[test]
    fn a_full_book_forgets_the_most_failing_then_the_oldest() {
        let mut book = AddressBook::new(3);
        for port in 1..=3 {
            book.learn(addr(port), NodeId(u64::from(port)));
        }
        book.failed(addr(2));
        assert!(book.learn(addr(4), NodeId(4)), "room made");
        assert_eq!(
            book.addrs().collect::<Vec<_>>(),
            [addr(1), addr(3), addr(4)]
        );
        assert!(book.learn(addr(5), NodeId(5)));
        assert_eq!(
            book.addrs().collect::<Vec<_>>(),
            [addr(3), addr(4), addr(5)]
        );
    }

    #[test]
    fn its_own_addresses_are_bounded() {
        let mut book = AddressBook::new(8);
        for port in 1..=(MAX_SELVES as u16 + 10) {
            book.is_self(addr(port));
        }
        assert_eq!(book.selves.len(), MAX_SELVES);
        assert!(
            book.learn(addr(1), PEER),
            "the oldest own address was let go"
        );
        assert!(!book.learn(addr(MAX_SELVES as u16 + 10), PEER));
    }

    #[test]
    fn forgets_an_address_that_keeps_failing() {
        let mut book = AddressBook::new(8);
        book.learn(addr(1), PEER);
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
    fn one_peer_fills_at_most_a_sixteenth_of_the_book() {
        let mut book = AddressBook::new(64);
        for port in 1..=10 {
            book.learn(addr(port), PEER);
        }
        assert_eq!(book.len(), 4, "64 / 16 from one peer");
        assert!(book.learn(addr(11), NodeId(2)), "others still have room");
        book.failed(addr(1));
        book.failed(addr(1));
        book.failed(addr(1));
        assert!(
            book.learn(addr(12), PEER),
            "a forgotten entry frees its share"
        );
        assert!(!book.learn(addr(13), PEER));
    }

    #[test]
    fn never_keeps_its_own_address() {
        let mut book = AddressBook::new(8);
        book.learn(addr(1), PEER);
        book.is_self(addr(1));
        assert!(book.is_empty());
        assert!(!book.learn(addr(1), PEER));
    }
}
