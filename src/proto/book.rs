//! The address book: where other nodes accept peers, as learned from links and peer
//! exchange. Bounded in size; an address that fails to link a few times in a row is
//! forgotten, and one that led back to this node is never kept again.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

/// Dials in a row that may fail before a learned address is forgotten.
pub const MAX_FAILURES: u32 = 3;

/// Addresses of other nodes; iteration is in address order, so what is dialled depends
/// only on what was learned and on the node's seed.
#[derive(Debug)]
pub struct AddressBook {
    known: BTreeMap<SocketAddr, u32>,
    /// Addresses that turned out to be this node's own.
    selves: BTreeSet<SocketAddr>,
    capacity: usize,
}

impl AddressBook {
    pub fn new(capacity: usize) -> Self {
        AddressBook {
            known: BTreeMap::new(),
            selves: BTreeSet::new(),
            capacity,
        }
    }

    /// Records `addr` as a place a node accepts peers; false if it was known already,
    /// is this node's own, cannot be dialled, or the book is full.
    pub fn learn(&mut self, addr: SocketAddr) -> bool {
        let dialable = !addr.ip().is_unspecified() && addr.port() != 0;
        if !dialable || self.selves.contains(&addr) || self.known.contains_key(&addr) {
            return false;
        }
        if self.known.len() >= self.capacity {
            return false;
        }
        self.known.insert(addr, 0);
        true
    }

    /// A link to `addr` came up: its failures are forgiven.
    pub fn succeeded(&mut self, addr: SocketAddr) {
        if let Some(failures) = self.known.get_mut(&addr) {
            *failures = 0;
        }
    }

    /// A dial of `addr` failed; after [`MAX_FAILURES`] in a row it is forgotten.
    pub fn failed(&mut self, addr: SocketAddr) {
        if let Some(failures) = self.known.get_mut(&addr) {
            *failures += 1;
            if *failures >= MAX_FAILURES {
                self.known.remove(&addr);
            }
        }
    }

    /// `addr` led back to this node: forget it and never learn it again.
    pub fn is_self(&mut self, addr: SocketAddr) {
        self.known.remove(&addr);
        self.selves.insert(addr);
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
    fn learns_each_dialable_address_once_up_to_capacity() {
        let mut book = AddressBook::new(2);
        assert!(book.learn(addr(1)));
        assert!(!book.learn(addr(1)));
        assert!(!book.learn(SocketAddr::from(([0, 0, 0, 0], 7))));
        assert!(!book.learn(addr(0)));
        assert!(book.learn(addr(2)));
        assert!(!book.learn(addr(3)), "full");
        assert_eq!(book.addrs().collect::<Vec<_>>(), [addr(1), addr(2)]);
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
